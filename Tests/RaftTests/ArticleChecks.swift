import Foundation

/// Checks that keep the DocC articles true: their code is compiled by a test, and the paths and
/// function names they cite exist. Paths are relative to the package's root.
enum ArticleChecks {
    /// The package's root directory, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The text of a file under the root.
    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Whether a file or directory exists under the root.
    static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path)
    }

    /// The cells of every row of every Markdown table in `markdown`, header and separator rows
    /// skipped (a header row is one followed by a `| --- |` row).
    static func tableRows(in markdown: String) -> [[String]] {
        let lines = markdown.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var rows: [[String]] = []
        for (i, line) in lines.enumerated() where line.hasPrefix("|") && line.hasSuffix("|") && line.count > 1 {
            let isSeparator = { (l: String) in l.hasPrefix("| ---") || l.hasPrefix("|---") }
            if isSeparator(line) || (i + 1 < lines.count && isSeparator(lines[i + 1])) { continue }
            rows.append(line.dropFirst().dropLast().components(separatedBy: " | ").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        return rows
    }

    /// The texts between pairs of backticks (a symbol link's double backticks give its path).
    static func codeSpans(_ text: String) -> [String] {
        text.replacingOccurrences(of: "``", with: "`").split(separator: "`", omittingEmptySubsequences: false)
            .enumerated().compactMap { i, part in i % 2 == 1 ? String(part) : nil }
    }

    /// The ```swift blocks of `markdown` (after `start` and before `stop`, when given), each as
    /// its lines.
    static func swiftBlocks(in markdown: String, after start: String? = nil, before stop: String? = nil) -> [[String]] {
        var text = Substring(markdown)
        if let start { text = text.range(of: start).map { text[$0.upperBound...] } ?? "" }
        if let stop, let end = text.range(of: stop) { text = text[..<end.lowerBound] }
        var blocks: [[String]] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil, trimmed == "```swift" {
                current = []
            } else if current != nil, trimmed == "```" {
                blocks.append(current!)
                current = nil
            } else if current != nil {
                current!.append(String(line))
            }
        }
        return blocks
    }

    /// Lines of the article's Swift blocks (between `start` and `stop`) that `source` does not
    /// contain, comparing `normalized(_:)` lines and ignoring blank ones. An article without
    /// any Swift block is itself a failure: the check would prove nothing.
    static func snippetLinesMissing(
        article: String, from source: String, after start: String? = nil, before stop: String? = nil
    ) throws -> [String] {
        let blocks = swiftBlocks(in: try read(article), after: start, before: stop)
        if blocks.isEmpty { return ["(\(article) has no ```swift block)"] }
        let held = Set(try read(source).split(separator: "\n").map(normalized))
        return blocks.joined().map(normalized).filter { !$0.isEmpty && !held.contains($0) }
    }

    /// A line without its indentation and without a leading `static `: the tests keep an
    /// article's free functions as static members of an enum, so their names cannot clash.
    static func normalized(_ line: some StringProtocol) -> String {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return trimmed.hasPrefix("static ") ? String(trimmed.dropFirst("static ".count)) : trimmed
    }
}
