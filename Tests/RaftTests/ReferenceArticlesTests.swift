import Foundation
import Testing

/// The reference articles follow the code: the configuration reference lists every option of
/// each configuration with the default the source gives it, and the operations article says
/// what to do about every error code.
enum ConfigurationTable {
    /// A stored property of a configuration, as its declaration reads.
    struct Option: Equatable {
        var name: String
        var type: String
        /// The initial value in the declaration (`= 10`), if any.
        var initialValue: String?
    }

    /// The public stored properties declared at the top level of `type` in `source` (SPI ones,
    /// marked `@_spi`, and computed ones are not options).
    static func options(of type: String, in source: String) -> [Option] {
        guard let start = source.range(of: "public struct \(type)") else { return [] }
        let body = source[start.upperBound...].prefix { _ in true }
        var options: [Option] = []
        for line in body.split(separator: "\n", omittingEmptySubsequences: false).dropFirst() {
            if line.hasPrefix("}") { break }
            guard line.hasPrefix("    public var ") else { continue }
            let declaration = line.dropFirst("    public var ".count)
            guard let colon = declaration.firstIndex(of: ":") else { continue }
            let name = String(declaration[..<colon])
            let rest = declaration[declaration.index(after: colon)...]
            if rest.contains("{") { continue }
            let parts = rest.components(separatedBy: " = ")
            options.append(
                Option(
                    name: name, type: parts[0].trimmingCharacters(in: .whitespaces),
                    initialValue: parts.count > 1 ? parts[1...].joined(separator: " = ").trimmingCharacters(in: .whitespaces) : nil))
        }
        return options
    }

    /// The rows of the article's section whose heading ends with `: type`, keyed by option
    /// name: the name is the last path component of the first cell's code span.
    static func rows(for type: String, in article: String) -> [String: [String]] {
        let sections = article.components(separatedBy: "\n## ")
        guard let section = sections.first(where: { $0.prefix { $0 != "\n" }.hasSuffix(": \(type)") }) else { return [:] }
        var rows: [String: [String]] = [:]
        for cells in ArticleChecks.tableRows(in: section) where cells.count == 4 {
            guard let span = ArticleChecks.codeSpans(cells[0]).first else { continue }
            rows[String(span.split(separator: "/").last ?? "")] = cells
        }
        return rows
    }

    /// What is wrong with the article's table of `type`: options it misses, rows for options
    /// that do not exist, and defaults that differ from the source. `constant` resolves a
    /// default written as a constant (`WireFormat.defaultMaxFrameBytes`) to its value.
    static func problems(
        type: String, source: String, article: String, constant: (String) -> String?
    ) -> [String] {
        let options = options(of: type, in: source)
        if options.isEmpty { return ["\(type): no options found in its source"] }
        let rows = rows(for: type, in: article)
        var problems: [String] = []
        for extra in Set(rows.keys).subtracting(options.map(\.name)).sorted() {
            problems.append("\(type): the article lists `\(extra)`, which is not an option")
        }
        for option in options {
            guard let cells = rows[option.name] else {
                problems.append("\(type).\(option.name): missing from the article")
                continue
            }
            let written = ArticleChecks.codeSpans(cells[1]).first
            let expected: String
            if let value = option.initialValue {
                expected = constant(value) ?? value
            } else if option.type.hasSuffix("?") {
                expected = "nil"
            } else {
                // Set by the initializer: the article says "(required)" or gives what it sets.
                if cells[1] == "(required)" || written.map({ source.contains($0) }) == true { continue }
                problems.append("\(type).\(option.name): the default `\(cells[1])` is neither (required) nor in the source")
                continue
            }
            // An enum case is written as a symbol link: ``SnapshotSending/inMessage`` for `.inMessage`.
            let matches = written == expected || (expected.hasPrefix(".") && written?.hasSuffix("/" + expected.dropFirst()) == true)
            if !matches {
                problems.append("\(type).\(option.name): the article says `\(written ?? cells[1])`, the source `\(expected)`")
            }
        }
        return problems
    }
}

@Suite("Reference articles")
struct ReferenceArticlesTests {
    static let configurations: [(type: String, source: String)] = [
        ("RaftConfiguration", "Sources/Raft/RaftConfiguration.swift"),
        ("RaftNodeConfiguration", "Sources/Raft/Node/RaftNode.swift"),
        ("FileLogStorageOptions", "Sources/Raft/Storage/FileLogStorage.swift"),
        ("TCPTransportConfiguration", "Sources/RaftTransportTCP/TCPTransportConfiguration.swift"),
        ("TCPTransportTLS", "Sources/RaftTransportTCP/TCPTransportTLS.swift"),
    ]

    /// `Type.name` defaults, resolved from the `static let name = value` in the TCP wire format.
    static func constant(_ expression: String) -> String? {
        let parts = expression.split(separator: ".")
        guard parts.count == 2, parts[0] == "WireFormat",
            let source = try? ArticleChecks.read("Sources/RaftTransportTCP/Wire/WireFormat.swift"),
            let line = source.split(separator: "\n").first(where: { $0.contains("static let \(parts[1]) = ") })
        else { return nil }
        return line.components(separatedBy: " = ").last.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Every option of every configuration is in the configuration reference, with its real
    /// default.
    @Test(arguments: configurations.map(\.type))
    func everyOptionWithItsDefault(_ type: String) throws {
        let source = try ArticleChecks.read(Self.configurations.first { $0.type == type }!.source)
        let article = try ArticleChecks.read("Sources/Raft/Docs.docc/ConfigurationReference.md")
        let problems = ConfigurationTable.problems(type: type, source: source, article: article, constant: Self.constant)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// The check catches a missing option, an option that does not exist, and a wrong default.
    @Test func theCheckCatchesRot() {
        let source = """
            public struct Knobs: Sendable {
                public var ticks: Int = 10
                public var mode: Mode = .fast
                public var name: String
                public var lease: Lease?
                public var computed: Int { 1 }
            }
            """
        let article = """
            ## The knobs: Knobs

            | Option | Default | What it does | When to change it |
            | --- | --- | --- | --- |
            | ``Knobs/ticks`` | `12` | a | b |
            | ``Knobs/mode`` | ``Mode/fast`` | a | b |
            | ``Knobs/gone`` | `1` | a | b |
            | ``Knobs/lease`` | `nil` | a | b |
            """
        let problems = ConfigurationTable.problems(type: "Knobs", source: source, article: article, constant: { _ in nil })
        #expect(problems.contains("Knobs.ticks: the article says `12`, the source `10`"))
        #expect(problems.contains("Knobs.name: missing from the article"))
        #expect(problems.contains("Knobs: the article lists `gone`, which is not an option"))
        #expect(problems.count == 3, "\(problems)")
    }

    /// The operations article says what to do about every error code.
    @Test func everyErrorCodeIsExplained() throws {
        let source = try ArticleChecks.read("Sources/Raft/RaftError.swift")
        let codes = source.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: "public static let ") else { return nil }
            let rest = line[r.upperBound...]
            guard rest.contains("= Code(") else { return nil }
            return String(rest.prefix { $0 != " " })
        }
        #expect(codes.count >= 20, "found \(codes.count) codes")
        let article = try ArticleChecks.read("Sources/Raft/Docs.docc/Operations.md")
        let missing = codes.filter { !article.contains("``RaftError/Code/\($0)``") }
        #expect(missing.isEmpty, "Operations.md does not explain \(missing)")
    }
}
