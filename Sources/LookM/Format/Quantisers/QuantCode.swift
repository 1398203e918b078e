/// How one group of kept keys or values becomes codes (docs/method.md section 12): a scale (and a
/// zero point, for asymmetric codes) per group, and one code of `bits` bits per element. Adding a
/// code is a new file and a line in `QuantCodes.all`.
protocol QuantCode: Sendable {
    /// The `--quant` name (`int4`).
    var name: String { get }
    /// Bits per code: 2, 4 or 8 (codes are packed into bytes, docs/format.md).
    var bits: Int { get }
    /// Whether a group stores a zero point beside its scale.
    var hasZero: Bool { get }
    /// Codes of `group` (values already rounded to `type`) into `codes`, and the group's scale and
    /// zero point (0 when the code has none), both representable in `type`. Every arithmetic step
    /// is rounded to `type`, as the reference code computes in the model's dtype.
    func encode(_ group: UnsafeBufferPointer<Float>, type: ElementType, codes: UnsafeMutableBufferPointer<UInt8>)
        -> (scale: Float, zero: Float)
    /// The code of one value of a group whose scale and zero point are known (what `encode` gives it).
    func code(_ x: Float, scale: Float, zero: Float, type: ElementType) -> UInt8
    /// The value a code stands for, rounded to `type`.
    func decode(_ code: UInt8, scale: Float, zero: Float, type: ElementType) -> Float
}

/// The quantised storages `--quant` names, besides `none`.
enum QuantCodes {
    static let all: [any QuantCode] = [IntCode(bits: 8), IntCode(bits: 4), IntCode(bits: 2), FP8Code()]
    static var names: [String] { all.map(\.name) }
    static func named(_ name: String) -> (any QuantCode)? { all.first { $0.name == name } }
}
