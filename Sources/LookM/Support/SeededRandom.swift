/// SplitMix64: a small, fast generator whose streams are fully determined by their seed, so every
/// (layer, head, tensor) gets its own reproducible stream whatever order or thread computes it.
struct SeededRandom {
    private var state: UInt64

    init(seed: UInt64, stream: [UInt64] = []) {
        var s = seed &+ 0x9E37_79B9_7F4A_7C15
        for part in stream { s = SeededRandom.mix(s ^ (part &+ 0xD1B5_4A32_D192_ED03)) }
        state = s
    }

    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        return SeededRandom.mix(state &- 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform integer in `range` (tiny modulo bias is irrelevant for synthetic data).
    mutating func int(in range: Range<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    /// Standard normal by Box-Muller (one value per call; simple beats fast here).
    mutating func normal() -> Float {
        let u1 = max(uniform(), 0x1p-60)
        let u2 = uniform()
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// A random unit vector.
    mutating func unitVector(_ n: Int) -> [Float] {
        var v = (0..<n).map { _ in normal() }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in v.indices { v[i] /= max(norm, 1e-12) }
        return v
    }
}

#if canImport(Glibc)
    import Glibc
    @inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
    import Darwin
    @inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
