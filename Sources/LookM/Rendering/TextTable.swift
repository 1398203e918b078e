/// Aligned text tables for people and CSV for machines, from the same rows.
public struct TextTable: Sendable {
    public var headers: [String]
    public var rows: [[String]] = []

    public init(_ headers: [String]) { self.headers = headers }

    public mutating func add(_ row: [String]) { rows.append(row) }

    /// Columns padded to their widest cell; numbers (and "-") right-aligned, text left-aligned.
    public var text: String {
        let widths = headers.indices.map { c in ([headers[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func isNumber(_ s: String) -> Bool { s == "-" || Double(s.replacingPercent()) != nil }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return isNumber(cell) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }

    /// RFC 4180: a header row, fields quoted only when they must be.
    public var csv: String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
                ? "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : s
        }
        return ([headers] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n")
    }
}

extension String {
    fileprivate func replacingPercent() -> String { hasSuffix("%") ? String(dropLast()) : self }
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// Fixed-precision cells; nil prints "-".
func cell(_ v: Double?, _ digits: Int = 4) -> String { v.map { Formatting.fixed($0, digits) } ?? "-" }
