import Logging

// Snapshot transfers: streaming the storage's latest snapshot to followers, and writing one
// received from the leader into a file, with every read, checksum and write on the transfer
// thread. The loop only decides (``SnapshotSenders``, ``SnapshotReceiver``), schedules, and
// takes the completions (``SnapshotWork``) from its inbox.
extension NodeLoop {
    // MARK: Sending

    /// Starts streaming the storage's latest snapshot to `peer`, as the core asked; the core
    /// did not read it (``SnapshotSending/streamedByShell``).
    func startSending(_ install: InstallSnapshot, to peer: NodeID, term: Term) throws(RaftError) {
        metrics.snapshotsSent.increment()
        logger.info("streaming snapshot", metadata: ["to": "\(peer)", "raft.snapshot": "\(install.metadata.index)"])
        try carryOut(senders.start(install.metadata, to: peer, term: term))
    }

    /// Sends the senders' chunks, schedules their reads and tells the core of the transfers
    /// that ended; closes the streams of transfers that are gone.
    func carryOut(_ effects: SnapshotSenders.Effects) throws(RaftError) {
        var e = effects
        while !e.isEmpty {
            node.transport.send(e.messages)
            for o in e.outcomes { snapshotTransferEnded(o) }
            var more = SnapshotSenders.Effects()
            for r in e.reads { more.merge(try scheduleRead(r)) }
            e = more
        }
        closeStaleStreams()
    }

    /// Reads the next piece of a transfer on the transfer thread, opening its stream first if
    /// it is the transfer's first read. Opening reads only the file's header.
    func scheduleRead(_ r: SnapshotSenders.Read) throws(RaftError) -> SnapshotSenders.Effects {
        guard let t = senders.transfers[r.peer], t.id == r.transfer else { return SnapshotSenders.Effects() }
        if r.opensStream {
            if storage.snapshotMetadata() != t.metadata {
                // A newer snapshot replaced it: the core sends that one instead.
                return senders.abandon(r.peer, transfer: r.transfer)
            }
            let input: SnapshotInput
            do { input = try storage.openSnapshot(verification: .whileReading) } catch {
                throw RaftError(error.code, "node \(node.id): opening snapshot \(t.metadata.index) to send it failed: \(error.message)")
            }
            closeStream(of: r.peer)
            snapshotIO.streams[r.peer] = (r.transfer, Confined(value: SnapshotChunkReader(input: input, chunkBytes: senders.options.chunkBytes)))
        }
        guard let stream = snapshotIO.streams[r.peer], stream.transfer == r.transfer else { return SnapshotSenders.Effects() }
        let reader = stream.reader
        let inbox = node.inbox
        let (peer, transfer) = (r.peer, r.transfer)
        snapshotIO.transferQueue.async {
            let result: Result<SnapshotPiece, RaftError>
            do throws(RaftError) { result = .success(try reader.value.next()) } catch { result = .failure(error) }
            inbox.post(.snapshotWork(.chunkRead(peer: peer, transfer: transfer, result)))
        }
        return SnapshotSenders.Effects()
    }

    func closeStream(of peer: NodeID) {
        guard let s = snapshotIO.streams.removeValue(forKey: peer) else { return }
        // After any read still queued for it.
        snapshotIO.transferQueue.async { s.reader.value.close() }
    }

    func closeStaleStreams() {
        for (peer, s) in snapshotIO.streams where senders.transfers[peer]?.id != s.transfer { closeStream(of: peer) }
    }

    /// Tells the core how a snapshot transfer ended.
    func snapshotTransferEnded(_ outcome: SnapshotSenders.Outcome) {
        switch outcome {
        case .finished(let peer):
            core.reportSnapshot(to: peer, failed: false)
        case .failed(let peer):
            logger.info("snapshot transfer failed; the leader will retry", metadata: ["to": "\(peer)"])
            core.reportSnapshot(to: peer, failed: true)
        }
    }

    // MARK: Receiving

    /// A follower's snapshot chunk: handed to the transfer thread to be verified and written.
    func receiveChunk(_ chunk: SnapshotChunk, in m: Message) throws(RaftError) {
        // Chunks of a deposed leader are not answered; its term reaches it another way.
        guard m.to == node.id, m.term >= core.term else { return }
        switch receiver.receive(chunk, from: m.from, term: m.term) {
        case .reply(let r):
            node.transport.send([r])
        case .write(let w):
            try scheduleWrite(w)
        case .invalid(let why):
            metrics.droppedMessages.increment()
            logger.debug("dropped a snapshot chunk", metadata: ["from": "\(m.from)", "error": "\(why)"])
        }
        abortStaleReceiving()
    }

    func scheduleWrite(_ w: SnapshotReceiver.Write) throws(RaftError) {
        if w.begins {
            abortReceiving()
            let output: SnapshotOutput
            do { output = try storage.beginReceivedSnapshot(w.metadata) } catch {
                throw RaftError(error.code, "node \(node.id): starting the file for snapshot \(w.metadata.index) failed: \(error.message)")
            }
            snapshotIO.receiving = (w.from, w.transfer, Confined(value: ReceivedSnapshotWriter(output: output)))
        }
        guard let r = snapshotIO.receiving, r.from == w.from, r.transfer == w.transfer else { return }
        let writer = r.writer
        let inbox = node.inbox
        snapshotIO.transferQueue.async {
            let outcome: ChunkStored.Outcome
            do throws(RaftError) { outcome = try writer.value.write(w.piece) ? .stored : .damaged } catch { outcome = .failed(error) }
            inbox.post(.snapshotWork(.chunkStored(ChunkStored(from: w.from, transfer: w.transfer, end: w.piece.end, last: w.piece.last, outcome: outcome))))
        }
    }

    /// A piece was written: answers the sender; the last one completes the snapshot, which is
    /// stepped into the core as an install naming the file.
    func chunkStored(_ s: ChunkStored) throws(RaftError) {
        let current = snapshotIO.receiving.map { $0.from == s.from && $0.transfer == s.transfer } ?? false
        var damaged = false
        switch s.outcome {
        case .stored: break
        case .damaged: damaged = true
        case .failed(let error):
            // An older transfer's file failing is of no consequence: it was dropped already.
            guard current else { return }
            throw RaftError(error.code, "node \(node.id): writing the snapshot received from node \(s.from) failed: \(error.message)")
        }
        switch receiver.stored(transfer: s.transfer, from: s.from, end: s.end, last: s.last, damaged: damaged) {
        case .stale:
            break
        case .reply(let r):
            if damaged {
                metrics.droppedMessages.increment()
                logger.info("a snapshot chunk failed its checksum; the transfer starts over", metadata: ["from": "\(s.from)"])
            }
            node.transport.send([r])
        case .complete(let from, let term, let metadata, let replies):
            guard current, let r = snapshotIO.receiving else { return }
            snapshotIO.receiving = nil
            snapshotIO.lastReceivedID += 1
            let id = snapshotIO.lastReceivedID
            // All its writes are done: the output is the loop's again.
            snapshotIO.received[id] = Confined(value: r.writer.value.output)
            let install = Message(from: from, to: node.id, term: term, kind: .installSnapshot(InstallSnapshot(metadata: metadata, data: .received(id: id))))
            do { try core.step(install) } catch {
                if core.storageFailure != nil { throw error }
                metrics.droppedMessages.increment()
                logger.info("refused a snapshot", metadata: ["from": "\(from)", "error": "\(error.message)"])
            }
            node.transport.send(replies)
        }
        abortStaleReceiving()
    }

    func abortReceiving() {
        guard let r = snapshotIO.receiving else { return }
        snapshotIO.receiving = nil
        // After any write still queued for it; removes the temporary file.
        snapshotIO.transferQueue.async { r.writer.value.output.abort() }
    }

    /// Drops the file of an assembly the receiver gave up.
    func abortStaleReceiving() {
        guard let r = snapshotIO.receiving else { return }
        if receiver.assembly?.from != r.from || receiver.assembly?.transfer != r.transfer { abortReceiving() }
    }

    /// Drops received snapshots the core refused: the batch that would have installed them is
    /// done.
    func dropUnclaimedSnapshots() {
        for (_, output) in snapshotIO.received { output.value.abort() }
        snapshotIO.received = [:]
    }

    /// After the loop stopped and the transfer thread went idle: closes every stream and
    /// drops every file being received.
    func releaseSnapshotTransfers() {
        for (_, s) in snapshotIO.streams { s.reader.value.close() }
        snapshotIO.streams = [:]
        snapshotIO.receiving?.writer.value.output.abort()
        snapshotIO.receiving = nil
        dropUnclaimedSnapshots()
    }

    // MARK: Completions

    func handle(_ work: SnapshotWork) throws(RaftError) {
        switch work {
        case .chunkRead(let peer, let transfer, let result):
            switch result {
            case .success(let piece):
                try carryOut(senders.read(piece, peer: peer, transfer: transfer))
            case .failure(let error):
                // A stream closed meanwhile is of no consequence.
                guard let t = senders.transfers[peer], t.id == transfer else { return }
                throw RaftError(error.code, "node \(node.id): reading snapshot \(t.metadata.index) to send it failed: \(error.message)")
            }
        case .chunkStored(let s):
            try chunkStored(s)
        case .restored(let meta, let failure):
            try snapshotRestored(meta, failure: failure)
        }
    }
}
