/// The canonical JSON of docs/format.md for the `method` attribute: keys sorted, no whitespace, no
/// null, integers without a decimal point, ratios as the shortest round-tripping decimal that
/// always has a decimal point. Two runs with the same settings produce byte-identical strings.
enum CanonicalJSON {
    enum Value: Equatable {
        case string(String)
        case int(Int)
        case ratio(Double)
    }

    static func encode(_ object: [String: Value]) -> String {
        let body = object.keys.sorted().map { key -> String in
            let value: String
            switch object[key]! {
            case .string(let s): value = quote(s)
            case .int(let i): value = String(i)
            case .ratio(let d): value = decimal(d)
            }
            return "\(quote(key)):\(value)"
        }
        return "{" + body.joined(separator: ",") + "}"
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Shortest round-trip digits (Swift's description) in plain decimal form: 0.1, 1.0, 0.00001.
    static func decimal(_ d: Double) -> String {
        let text = "\(d)"
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) else {
            return text.contains(".") ? text : text + ".0"
        }
        let mantissa = String(text[..<e])
        let exponent = Int(text[text.index(after: e)...]) ?? 0
        let negative = mantissa.hasPrefix("-")
        let digitsPart = negative ? String(mantissa.dropFirst()) : mantissa
        let point =
            digitsPart.firstIndex(of: ".").map { digitsPart.distance(from: digitsPart.startIndex, to: $0) }
            ?? digitsPart.count
        let digits = digitsPart.filter { $0 != "." }
        let position = point + exponent  // where the decimal point goes in `digits`
        var result: String
        if position <= 0 {
            result = "0." + String(repeating: "0", count: -position) + digits
        } else if position >= digits.count {
            result = digits + String(repeating: "0", count: position - digits.count) + ".0"
        } else {
            result = String(digits.prefix(position)) + "." + String(digits.dropFirst(position))
        }
        return (negative ? "-" : "") + result
    }
}
