// Helpers shared by the benchmark programs: number formatting, temporary directories, option
// parsing.
#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser

/// `1234567` as `1,234,567`.
public func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}

/// `x` with exactly `places` decimals (grouped thousands).
public func fixed(_ x: Double, _ places: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    if places <= 0 { return grouped(Int(x.rounded())) }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = Int((x.magnitude * scale).rounded())
    let whole = scaled / Int(scale)
    let frac = String(scaled % Int(scale))
    let padded = String(repeating: "0", count: places - frac.count) + frac
    return (x < 0 && scaled != 0 ? "-" : "") + "\(grouped(whole)).\(padded)"
}

/// `s` right-aligned in `width` columns.
public func padLeft(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

/// Creates a fresh directory `<parent>/<program>-XXXXXX`; exits the program if it cannot.
public func makeTemporaryDirectory(in parent: String, for program: String) -> String {
    var template = Array("\(parent)/\(program)-XXXXXX".utf8CString)
    guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        print("\(program): cannot create a directory in \(parent): \(String(cString: strerror(errno)))")
        exit(1)
    }
    return String(cString: p)
}

/// Removes `path` and everything under it.
public func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if (st.st_mode & S_IFMT) == S_IFDIR {
        if let d = opendir(path) {
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for n in names { removeTree(path + "/" + n) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

// MARK: - Command-line options (swift-argument-parser)

/// A comma-separated, non-empty list of integers on the command line: `-p 16,1024`.
public struct IntList: ExpressibleByArgument, Sendable, Equatable, CustomStringConvertible {
    /// The integers, in the order given.
    public var values: [Int]

    /// A list with these values (a default).
    public init(_ values: [Int]) { self.values = values }

    /// Parses `16,1024`; `nil` (a usage error) when a part is not an integer or the list is empty.
    public init?(argument: String) {
        var values: [Int] = []
        for part in argument.split(separator: ",") {
            guard let n = Int(part) else { return nil }
            values.append(n)
        }
        guard !values.isEmpty else { return nil }
        self.values = values
    }

    /// `16,1024`, as typed.
    public var description: String { values.map(String.init).joined(separator: ",") }
    /// Shown in `--help` as the default.
    public var defaultValueDescription: String { description }
}

/// Checks an option's value in `validate()`: a usage error (the message, then the usage) when
/// `condition` is false.
public func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}

/// Checks that `seconds` (the value of `flag`) is a finite number of seconds, above zero unless
/// `allowZero`.
public func requireSeconds(_ seconds: Double, _ flag: String, allowZero: Bool) throws {
    try require(
        seconds.isFinite && (seconds > 0 || (allowZero && seconds == 0)),
        "\(flag) needs a \(allowZero ? "non-negative" : "positive") number of seconds, got '\(seconds)'")
}

/// Checks that every value of the list given for `flag` is at least `minimum`.
public func requireAll(_ list: IntList, atLeast minimum: Int, _ flag: String) throws {
    try require(list.values.allSatisfy { $0 >= minimum }, "\(flag) needs integers of at least \(minimum), got '\(list)'")
}

/// Nanoseconds as microseconds, or milliseconds from 10 ms on.
public func latency(_ nanos: Double) -> String {
    guard nanos.isFinite else { return "-" }
    return nanos >= 10e6 ? "\(fixed(nanos / 1e6, 1)) ms" : "\(fixed(nanos / 1e3, 0)) µs"
}

/// A duration in whole nanoseconds.
public func nanoseconds(_ d: Duration) -> Int {
    let c = d.components
    return Int(c.seconds) * 1_000_000_000 + Int(c.attoseconds / 1_000_000_000)
}

/// `s` padded with spaces on the right to `width` characters.
public func padRight(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
