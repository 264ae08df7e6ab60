import NIOCore
import Raft

/// Splits a connection's byte stream into ``WireFrame``s (``WireFormat/decodeFrame(from:maxFrameBytes:)``).
///
/// Install it wrapped in a `ByteToMessageHandler`. It never consumes a partial frame, and it
/// checks a frame's length against the limit before waiting for its payload, so a peer cannot
/// make it buffer more than one frame's worth of bytes. A malformed frame fails with a
/// ``/Raft/RaftError`` (fired down the pipeline as an error); the connection must then be closed,
/// since nothing after it can be trusted.
public struct WireFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireFrame

    /// The largest frame accepted, header included.
    public let maxFrameBytes: Int

    /// Creates a decoder that accepts frames of at most `maxFrameBytes` bytes.
    public init(maxFrameBytes: Int = WireFormat.defaultMaxFrameBytes) {
        self.maxFrameBytes = maxFrameBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try WireFormat.decodeFrame(from: &buffer, maxFrameBytes: maxFrameBytes) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Whole frames that arrived before the end still count; a partial one is dropped with
        // the connection.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Encodes ``WireFrame``s written to a channel into bytes, one frame per write (the transport's
/// own connections batch many frames into one buffer instead; this encoder serves simple
/// clients and tests).
public struct WireFrameEncoder: MessageToByteEncoder {
    /// What the encoder takes from the pipeline: whole frames.
    public typealias OutboundIn = WireFrame

    /// The largest frame written; a larger one fails the write with
    /// ``/Raft/RaftError/Code/invalidArgument``.
    public let maxFrameBytes: Int

    /// Creates an encoder that writes frames of at most `maxFrameBytes` bytes.
    public init(maxFrameBytes: Int = WireFormat.defaultMaxFrameBytes) {
        self.maxFrameBytes = maxFrameBytes
    }

    public func encode(data: WireFrame, out: inout ByteBuffer) throws {
        try WireFormat.encode(data, into: &out, maxFrameBytes: maxFrameBytes)
    }
}
