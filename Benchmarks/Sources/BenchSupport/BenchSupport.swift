// Helpers shared by the benchmark programs: number formatting, temporary directories.
#if canImport(Glibc)
    import Glibc
#endif

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

/// Reads a program's command-line options; on a bad one prints why and the usage, and exits 2.
public struct ArgumentReader {
    let program: String
    let usage: String
    var rest: ArraySlice<String>

    /// Reads `arguments` (the program name first, as in `CommandLine.arguments`).
    public init(_ arguments: [String], program: String, usage: String) {
        self.program = program
        self.usage = usage
        rest = arguments.dropFirst()[...]
    }

    /// The next argument, if any.
    public mutating func next() -> String? { rest.popFirst() }

    /// Prints why the arguments are wrong and the usage; exits with status 2.
    public func fail(_ why: String) -> Never {
        print("\(program): \(why)\n\(usage)")
        exit(2)
    }

    /// The value following `flag`.
    public mutating func value(_ flag: String) -> String {
        guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
        return v
    }

    /// A positive integer following `flag`.
    public mutating func positiveInt(_ flag: String) -> Int {
        let v = value(flag)
        guard let n = Int(v), n > 0 else { fail("\(flag) needs a positive integer, got '\(v)'") }
        return n
    }

    /// A non-negative integer following `flag`.
    public mutating func nonNegativeInt(_ flag: String) -> Int {
        let v = value(flag)
        guard let n = Int(v), n >= 0 else { fail("\(flag) needs a non-negative integer, got '\(v)'") }
        return n
    }

    /// A number of seconds following `flag` (positive, or zero if allowed).
    public mutating func seconds(_ flag: String, allowZero: Bool) -> Double {
        let v = value(flag)
        guard let s = Double(v), s.isFinite, s > 0 || (allowZero && s == 0) else { fail("\(flag) needs a number of seconds, got '\(v)'") }
        return s
    }

    /// A comma-separated, non-empty list of integers of at least `minimum` following `flag`.
    public mutating func intList(_ flag: String, minimum: Int) -> [Int] {
        let v = value(flag)
        var out: [Int] = []
        for part in v.split(separator: ",") {
            guard let n = Int(part), n >= minimum else { fail("\(flag) needs integers of at least \(minimum), got '\(v)'") }
            out.append(n)
        }
        if out.isEmpty { fail("\(flag) needs at least one value") }
        return out
    }
}
