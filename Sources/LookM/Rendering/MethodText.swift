/// A cache's canonical `method` JSON for people.
enum MethodText {
    /// The settings JSON as `key value` pairs, method first.
    static func describe(_ method: JSONValue) -> String {
        guard case .object(let o) = method else { return "\(method)" }
        func text(_ v: JSONValue) -> String {
            switch v {
            case .string(let s): return s
            case .number(let n): return n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
            case .bool(let b): return String(b)
            default: return "\(v)"
            }
        }
        let first = o["method"].map(text) ?? "custom"
        let rest = o.keys.sorted().filter { $0 != "method" }.map { "\($0) \(text(o[$0]!))" }
        return ([first] + rest).joined(separator: ", ")
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
