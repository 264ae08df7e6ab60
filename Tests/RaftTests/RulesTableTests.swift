import Foundation
import Testing

/// The table of the DocC article "Where the rules live" (Sources/Raft/Docs.docc/WhereTheRulesLive.md)
/// cannot rot: every path it names exists, and every name after a Swift file's path is declared
/// in that file.
enum RulesTable {
    /// One row of a table: the rule, and the code spans of its "implemented in" and "checked
    /// by" columns.
    struct Row {
        var rule: String
        var implementedIn: [String]
        var checkedBy: [String]
    }

    /// The rows of every three-column table in `markdown`.
    static func rows(in markdown: String) -> [Row] {
        ArticleChecks.tableRows(in: markdown).compactMap { cells in
            guard cells.count == 3 else { return nil }
            return Row(
                rule: cells[0], implementedIn: ArticleChecks.codeSpans(cells[1]), checkedBy: ArticleChecks.codeSpans(cells[2]))
        }
    }

    /// What is wrong with `row`: paths that do not exist, names not declared in the Swift file
    /// named before them, a column that names no file. `exists` and `read` see the repository.
    static func problems(
        in row: Row, exists: (String) -> Bool, read: (String) throws -> String
    ) -> [String] {
        var problems: [String] = []
        let rule = row.rule.prefix(40)
        for (column, spans, root) in [("implemented in", row.implementedIn, "Sources/"), ("checked by", row.checkedBy, "Tests/")] {
            if !spans.contains(where: { $0.hasPrefix(root) }) {
                problems.append("\(rule): the \(column) column names no file under \(root)")
            }
            var file: (path: String, text: String)?
            for span in spans {
                if span.hasPrefix("Sources/") || span.hasPrefix("Tests/") {
                    guard exists(span) else {
                        problems.append("\(rule): \(span) does not exist")
                        file = nil
                        continue
                    }
                    file = span.hasSuffix(".swift") ? (span, (try? read(span)) ?? "") : nil
                    continue
                }
                guard let current = file else {
                    problems.append("\(rule): `\(span)` follows no Swift file")
                    continue
                }
                if !declares(current.text, span) { problems.append("\(rule): \(current.path) declares no `\(span)`") }
            }
        }
        return problems
    }

    /// Whether `source` declares `name` (a function, an initializer's type, a type, a case or
    /// a property), as a whole word.
    static func declares(_ source: String, _ name: String) -> Bool {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !name.isEmpty else { return false }
        let pattern = #"\b(func|struct|class|enum|protocol|case|var|let)\s+"# + name + #"\b"#
        return source.range(of: pattern, options: .regularExpression) != nil
    }
}

@Suite("Where the rules live")
struct RulesTableTests {
    static let article = "Sources/Raft/Docs.docc/WhereTheRulesLive.md"

    /// Every path in the table exists and every function it names is declared in its file.
    @Test func everyPathAndFunctionExists() throws {
        let rows = RulesTable.rows(in: try ArticleChecks.read(Self.article))
        // The sections the article promises: §5.1 to §5.4, chapter 4, §3.10, §6.4, §9.6, compaction.
        #expect(rows.count >= 25, "the table has \(rows.count) rows")
        for section in ["§5.1", "§5.2", "§5.3", "§5.4.1", "§5.4.2", "§4.1", "§4.2.2", "§4.2.3", "§4.3", "§3.10", "§6.4", "§6.4.1", "§9.6", "§7"] {
            #expect(rows.contains { $0.rule.contains(section) }, "no rule of \(section)")
        }
        let problems = rows.flatMap {
            RulesTable.problems(in: $0, exists: ArticleChecks.exists, read: ArticleChecks.read)
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// The check itself catches a missing file, a name its file does not declare, a name
    /// with no file before it, and a row that names no test.
    @Test func theCheckCatchesRot() throws {
        let bad = """
            | Rule | Implemented in | Checked by |
            | --- | --- | --- |
            | §5.2 x | `Sources/Raft/Core/RaftCore+Election.swift` `hup` `noSuchFunction` | `Tests/RaftTests/NoSuchTests.swift` `whatever` |
            | §5.3 y | `dangling` `Sources/Raft/Core/RaftLog.swift` `isUpToDate` | no test named |
            """
        let rows = RulesTable.rows(in: bad)
        #expect(rows.count == 2)
        let problems = rows.flatMap {
            RulesTable.problems(in: $0, exists: ArticleChecks.exists, read: ArticleChecks.read)
        }
        #expect(problems.contains { $0.contains("declares no `noSuchFunction`") })
        #expect(!problems.contains { $0.contains("`hup`") })
        #expect(problems.contains { $0.contains("NoSuchTests.swift does not exist") })
        #expect(problems.contains { $0.contains("`whatever` follows no Swift file") })
        #expect(problems.contains { $0.contains("`dangling` follows no Swift file") })
        #expect(problems.contains { $0.contains("checked by column names no file") })
        #expect(!problems.contains { $0.contains("`isUpToDate`") })
    }
}
