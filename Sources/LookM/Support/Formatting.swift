/// Human-readable numbers for people-facing output (machine output keeps raw integers).
public enum Formatting {
    /// 1536 -> "1.5 KiB".
    public static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : "\(fixed(value, 1)) \(units[unit])"
    }

    /// `value` with `digits` decimals, without Foundation's locale-dependent formatting.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let scaled = (abs(value) * p).rounded()
        let whole = Int(scaled / p)
        let frac = Int(scaled.truncatingRemainder(dividingBy: p))
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard digits > 0 else { return "\(sign)\(whole)" }
        let f = String(frac)
        return "\(sign)\(whole).\(String(repeating: "0", count: digits - f.count))\(f)"
    }

    static func percent(_ part: Int, of whole: Int) -> String {
        whole == 0 ? "-" : "\(fixed(100 * Double(part) / Double(whole), 1)) %"
    }

    /// Groups consecutive indices with equal values: [(0...3, 90), (4...4, 120)].
    static func runs<T: Equatable>(_ values: [T]) -> [(ClosedRange<Int>, T)] {
        var result: [(ClosedRange<Int>, T)] = []
        for (i, v) in values.enumerated() {
            if let last = result.last, last.1 == v, last.0.upperBound == i - 1 {
                result[result.count - 1] = (last.0.lowerBound...i, v)
            } else {
                result.append((i...i, v))
            }
        }
        return result
    }

    static func layers(_ r: ClosedRange<Int>) -> String {
        r.count == 1 ? "layer \(r.lowerBound)" : "layers \(r.lowerBound)-\(r.upperBound)"
    }
}

extension Double {
    /// Fixed-point text with `digits` decimals (locale-independent).
    public func formatted(_ digits: Int) -> String { Formatting.fixed(self, digits) }
}

extension String {
    /// The text with control characters (C0 other than newline and tab, DEL, C1) written as
    /// `\xNN`: what lookm prints comes partly from files (a `model` attribute, a method's
    /// strings), and an escape sequence in one must not reach the terminal.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: { String.isControl($0) }) else { return self }
        var out = String.UnicodeScalarView()
        for u in unicodeScalars {
            if String.isControl(u) {
                let hex = String(u.value, radix: 16)
                out.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" + hex : hex)).unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    private static func isControl(_ u: Unicode.Scalar) -> Bool {
        (u.value < 0x20 && u != "\n" && u != "\t") || (0x7f...0x9f).contains(u.value)
    }
}
