import CKernels

/// Rounding Float32 values to the element type's precision, as quantisation does after every
/// operation (docs/method.md section 12). The arithmetic is CKernels' (`lookm_round_f16`,
/// `lookm_round_bf16`): bit operations without branches, one definition for the scalar calls here
/// and the vectorised loops there (whole arrays round through `ElementConversion.round`, the
/// conversions themselves); tests check it against the conversions
/// (Tests/LookMTests/QuantTests.swift).
extension ElementType {
    /// The `kind` CKernels' quantisation loops take.
    var roundingKind: Int32 {
        switch self {
        case .float16: return 1
        case .bfloat16: return 2
        case .float32, .float64: return 0
        }
    }

    /// `x` rounded to this type's precision (to nearest, ties to even), as storing it would round;
    /// float64 tensors hold Float32 values in lookm, so float32 and float64 leave `x` as it is.
    @inline(__always)
    func rounded(_ x: Float) -> Float { lookm_round_to(x, roundingKind) }

}
