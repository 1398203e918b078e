import CHDF5

/// The attributes of one HDF5 object. Absent attributes read as nil; an attribute of the wrong
/// kind (a string where a number belongs) is an error naming it.
struct H5Attributes {
    let owner: H5Handle
    let site: H5Site
    let objectPath: String

    func has(_ name: String) -> Bool {
        H5Aexists(owner.id, name) > 0
    }

    private func where_(_ name: String) -> String {
        objectPath == "/" ? "attribute \(name)" : "\(objectPath) attribute \(name)"
    }

    private func open(_ name: String) throws -> H5Handle? {
        guard has(name) else { return nil }
        return try site.own(H5Aopen(owner.id, name, h5_default()), nil, "opening \(where_(name))", closer: H5Aclose)
    }

    /// Number of elements of an attribute's dataspace; scalars count as 1.
    private func elementCount(_ attr: H5Handle, _ name: String) throws -> Int {
        let space = try site.own(H5Aget_space(attr.id), nil, "reading the shape of \(where_(name))", closer: H5Sclose)
        let n = H5Sget_simple_extent_npoints(space.id)
        try site.check(n, nil, "reading the shape of \(where_(name))")
        return Int(n)
    }

    func string(_ name: String) throws -> String? {
        guard let attr = try open(name) else { return nil }
        let fileType = try site.own(H5Aget_type(attr.id), nil, "reading the type of \(where_(name))", closer: H5Tclose)
        guard H5Tget_class(fileType.id) == H5T_STRING else {
            throw site.error(nil, "\(where_(name)) is \(StoredElement.describe(fileType.id)), expected a string")
        }
        guard try elementCount(attr, name) == 1 else {
            throw site.error(nil, "\(where_(name)) must be a single string")
        }
        if H5Tis_variable_str(fileType.id) > 0 {
            let memType = try site.own(H5Tcopy(h5t_c_s1()), nil, "making a string type", closer: H5Tclose)
            H5Tset_size(memType.id, h5t_variable())
            H5Tset_cset(memType.id, H5Tget_cset(fileType.id))
            var p: UnsafeMutablePointer<CChar>? = nil
            try site.check(H5Aread(attr.id, memType.id, &p), nil, "reading \(where_(name))")
            guard let p else { return "" }
            defer { H5free_memory(p) }  // HDF5 allocated it; free it through HDF5
            return String(cString: p)
        }
        let size = H5Tget_size(fileType.id)
        guard size > 0, size < 1 << 20 else {
            throw site.error(nil, "\(where_(name)) has an invalid string size \(size)")
        }
        var bytes = [UInt8](repeating: 0, count: size + 1)
        try site.check(
            bytes.withUnsafeMutableBytes { H5Aread(attr.id, fileType.id, $0.baseAddress) }, nil,
            "reading \(where_(name))")
        let end = bytes.firstIndex(of: 0) ?? size
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    func int(_ name: String) throws -> Int? {
        guard let attr = try open(name) else { return nil }
        let fileType = try site.own(H5Aget_type(attr.id), nil, "reading the type of \(where_(name))", closer: H5Tclose)
        guard H5Tget_class(fileType.id) == H5T_INTEGER else {
            throw site.error(nil, "\(where_(name)) is \(StoredElement.describe(fileType.id)), expected an integer")
        }
        guard try elementCount(attr, name) == 1 else {
            throw site.error(nil, "\(where_(name)) must be a single integer")
        }
        var value: Int64 = 0
        try site.check(
            H5Aread(attr.id, h5t_native_int64(), &value), nil, "reading \(where_(name)) (out of the int64 range?)")
        return Int(value)
    }

    func double(_ name: String) throws -> Double? {
        guard let attr = try open(name) else { return nil }
        let fileType = try site.own(H5Aget_type(attr.id), nil, "reading the type of \(where_(name))", closer: H5Tclose)
        let cls = H5Tget_class(fileType.id)
        guard cls == H5T_FLOAT || cls == H5T_INTEGER else {
            throw site.error(nil, "\(where_(name)) is \(StoredElement.describe(fileType.id)), expected a number")
        }
        guard try elementCount(attr, name) == 1 else {
            throw site.error(nil, "\(where_(name)) must be a single number")
        }
        var value = 0.0
        try site.check(H5Aread(attr.id, h5t_native_double(), &value), nil, "reading \(where_(name))")
        return value
    }

    private func scalarSpace(_ name: String) throws -> H5Handle {
        try site.own(H5Screate(H5S_SCALAR), nil, "making a scalar space for \(where_(name))", closer: H5Sclose)
    }

    /// Writes a variable-length UTF-8 string (h5py reads it back as `str`).
    func set(_ name: String, string value: String) throws {
        let type = try site.own(H5Tcopy(h5t_c_s1()), nil, "making a string type", closer: H5Tclose)
        H5Tset_size(type.id, h5t_variable())
        H5Tset_cset(type.id, H5T_CSET_UTF8)
        let space = try scalarSpace(name)
        let attr = try site.own(
            H5Acreate2(owner.id, name, type.id, space.id, h5_default(), h5_default()),
            nil, "creating \(where_(name))", closer: H5Aclose)
        try value.withCString { cs in
            var p: UnsafePointer<CChar>? = cs
            try site.check(H5Awrite(attr.id, type.id, &p), nil, "writing \(where_(name))")
        }
    }

    func set(_ name: String, int value: Int) throws {
        var v = Int64(value)
        try write(name, fileType: h5t_std_i64le(), memType: h5t_native_int64(), &v)
    }

    func set(_ name: String, double value: Double) throws {
        var v = value
        try write(name, fileType: h5t_ieee_f64le(), memType: h5t_native_double(), &v)
    }

    private func write<T: BitwiseCopyable>(_ name: String, fileType: hid_t, memType: hid_t, _ value: inout T) throws {
        let space = try scalarSpace(name)
        let attr = try site.own(
            H5Acreate2(owner.id, name, fileType, space.id, h5_default(), h5_default()),
            nil, "creating \(where_(name))", closer: H5Aclose)
        try site.check(H5Awrite(attr.id, memType, &value), nil, "writing \(where_(name))")
    }
}
