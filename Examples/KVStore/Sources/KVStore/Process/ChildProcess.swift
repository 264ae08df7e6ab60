#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started with `posix_spawn`, reaped by its pid.
///
/// Its standard input is `/dev/null`; its standard output and error go where the caller says
/// (inherited, or appended to a file). Used by `kvstore local` for its three nodes and by the
/// crash tests.
public final class ChildProcess: Sendable {
    /// How a child ended.
    public enum Exit: Sendable, Hashable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Where a child's standard output or error goes.
    public enum Output: Sendable, Hashable {
        /// The parent's own.
        case inherit
        /// Appended to a file (created if missing).
        case file(String)
        /// A pipe whose read end the caller gets from ``ChildProcess/stdoutPipe``.
        case pipe
    }

    /// The child's process id.
    public let pid: pid_t
    /// With ``Output/pipe`` for standard output: the read end (the caller closes it).
    public let stdoutPipe: Int32?
    /// With `stdinPipe: true`: the write end of the child's standard input (the caller closes
    /// it); otherwise its standard input is `/dev/null`.
    public let stdinPipe: Int32?

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameter newProcessGroup: With `true` the child leads a process group of its own (its
    ///   id is the child's pid), which the children it starts join unless they choose otherwise;
    ///   ``signalGroup(_:)`` then reaches all of them, even after the child itself died.
    /// - Throws: ``ChildProcessError`` when the pipe or the spawn fails.
    public init(
        executable: String, arguments: [String], stdinPipe wantsStdin: Bool = false, stdout: Output = .inherit, stderr: Output = .inherit,
        newProcessGroup: Bool = false
    ) throws(ChildProcessError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if newProcessGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var inFDs: [Int32] = [-1, -1]
        if wantsStdin {
            guard pipe(&inFDs) == 0 else { throw ChildProcessError("pipe failed: errno \(errno)") }
            for fd in inFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, inFDs[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        var pipeFDs: [Int32] = [-1, -1]
        if stdout == .pipe {
            guard pipe(&pipeFDs) == 0 else { throw ChildProcessError("pipe failed: errno \(errno)") }
            // Close-on-exec on both ends, so no other child inherits them; dup2 clears it on 1.
            for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        }
        for (fd, output) in [(Int32(1), stdout), (Int32(2), stderr)] {
            if case .file(let path) = output {
                posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            }
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        if stdout == .pipe { close(pipeFDs[1]) }
        if wantsStdin { close(inFDs[0]) }
        guard rc == 0 else {
            if stdout == .pipe { close(pipeFDs[0]) }
            if wantsStdin { close(inFDs[1]) }
            throw ChildProcessError("could not start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        stdoutPipe = stdout == .pipe ? pipeFDs[0] : nil
        stdinPipe = wantsStdin ? inFDs[1] : nil
    }

    /// Writes `line` and a newline to the child's standard input (with `stdinPipe: true`).
    public func send(line: String) {
        guard let fd = stdinPipe else { return }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Sends `signal` to the child (ignored if it is gone).
    public func signal(_ signal: Int32) { _ = kill(pid, signal) }

    /// Sends `signal` to every process of the child's process group (started with
    /// `newProcessGroup: true`): the child and the children it started (ignored if none is left).
    public func signalGroup(_ signal: Int32) { _ = kill(-pid, signal) }

    /// Reaps the child if it has exited; `nil` while it runs.
    public func exited() -> Exit? {
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        return Self.exit(raw)
    }

    /// Reaps the child, waiting until it has exited (on the calling thread).
    public func waitForExit() -> Exit {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        return Self.exit(raw)
    }

    private static func exit(_ raw: Int32) -> Exit {
        let signal = raw & 0x7f
        return signal == 0 ? .exited((raw >> 8) & 0xff) : .signalled(signal)
    }
}

/// A child process could not be started.
public struct ChildProcessError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
