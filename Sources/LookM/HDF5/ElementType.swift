import CHDF5

/// Element types of tensors in dumps and caches (docs/format.md). All are read raw from HDF5 and
/// converted by CKernels: HDF5's own 16-bit float conversion is about 200 times slower.
public enum ElementType: String, CaseIterable, Codable, Sendable {
    case float16, bfloat16, float32, float64

    public var byteSize: Int {
        switch self {
        case .float16, .bfloat16: return 2
        case .float32: return 4
        case .float64: return 8
        }
    }
}

/// How a dataset stores its elements: the logical type plus how bfloat16 is spelled in the file.
struct StoredElement {
    let type: ElementType
    /// HDF5 memory type that reads the stored bits without conversion (little-endian raw bits).
    let memoryType: H5Handle

    /// Classifies a dataset's file type. `bf16Attribute` is the dataset's `dtype` attribute, if any.
    static func classify(fileType: hid_t, bf16Attribute: String?, site: H5Site, object: String) throws -> StoredElement
    {
        let cls = H5Tget_class(fileType)
        let size = H5Tget_size(fileType)
        if cls == H5T_FLOAT {
            var spos = 0
            var epos = 0
            var esize = 0
            var mpos = 0
            var msize = 0
            try site.check(
                H5Tget_fields(fileType, &spos, &epos, &esize, &mpos, &msize), object, "reading the float type")
            let fields = [spos, epos, esize, mpos, msize]
            let type: ElementType?
            switch (size, fields) {
            case (2, [15, 10, 5, 0, 10]): type = .float16
            case (2, [15, 7, 8, 0, 7]): type = .bfloat16
            case (4, [31, 23, 8, 0, 23]): type = .float32
            case (8, [63, 52, 11, 0, 52]): type = .float64
            default: type = nil
            }
            guard let type else {
                throw site.error(
                    object,
                    "unsupported float type (\(size * 8)-bit, fields \(fields)); expected float16, bfloat16, float32 or float64"
                )
            }
            // Same fields, little-endian: reading into it is a plain copy (or a byte swap). The copy
            // is left untouched when the file is little-endian already: HDF5 then sees equal types
            // and copies bytes, instead of its soft float conversion (about 200 times slower).
            let mem = try site.own(H5Tcopy(fileType), object, "copying the float type", closer: H5Tclose)
            if H5Tget_order(fileType) != H5T_ORDER_LE {
                try site.check(H5Tset_order(mem.id, H5T_ORDER_LE), object, "setting the byte order")
            }
            return StoredElement(type: type, memoryType: mem)
        }
        if cls == H5T_INTEGER, size == 2, H5Tget_sign(fileType) == H5T_SGN_NONE {
            guard bf16Attribute == "bfloat16" else {
                throw site.error(
                    object,
                    "uint16 tensor without the attribute dtype = \"bfloat16\"; tensors must be float16, bfloat16 or float32"
                )
            }
            let mem = try site.own(H5Tcopy(h5t_std_u16le()), object, "copying the integer type", closer: H5Tclose)
            return StoredElement(type: .bfloat16, memoryType: mem)
        }
        throw site.error(
            object, "unsupported element type (\(describe(fileType))); expected float16, bfloat16 or float32")
    }

    /// The file type a writer uses for `type`; bfloat16 is always the uint16 form (docs/format.md).
    static func fileType(for type: ElementType, site: H5Site, object: String) throws -> H5Handle {
        switch type {
        case .float16:
            return try site.own(h5t_make_f16le(), object, "making the float16 type", closer: H5Tclose)
        case .bfloat16:
            return try site.own(H5Tcopy(h5t_std_u16le()), object, "making the bfloat16 type", closer: H5Tclose)
        case .float32:
            return try site.own(H5Tcopy(h5t_ieee_f32le()), object, "making the float32 type", closer: H5Tclose)
        case .float64:
            return try site.own(H5Tcopy(h5t_ieee_f64le()), object, "making the float64 type", closer: H5Tclose)
        }
    }

    /// A short human description of an HDF5 type for error messages.
    static func describe(_ type: hid_t) -> String {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_INTEGER: return "\(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int")\(size * 8)"
        case H5T_FLOAT: return "float\(size * 8)"
        case H5T_STRING: return "string"
        case H5T_COMPOUND: return "compound"
        case H5T_ENUM: return "enum"
        case H5T_ARRAY: return "array"
        case H5T_OPAQUE: return "opaque"
        default: return "HDF5 class \(H5Tget_class(type).rawValue)"
        }
    }
}
