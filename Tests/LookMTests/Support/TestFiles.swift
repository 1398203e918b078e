import CHDF5
import Foundation

@testable import LookM

/// A fresh temporary directory per test, removed when the value dies.
final class TemporaryDirectory {
    let path: String

    init() {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/lookm-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    var contents: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? [] }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Small dumps for tests, written by the real synth.
enum TestDumps {
    static func small(
        layers: Int = 2, heads: Int = 4, kvHeads: Int? = nil, dtype: ElementType = .float16,
        codec: Codec = .none, query: Bool = true, probes: Int = 2, window: Int = 4
    ) -> SynthOptions {
        var o = SynthOptions()
        o.layers = layers
        o.heads = heads
        o.kvHeads = kvHeads
        o.headDim = 16
        o.images = 2
        o.imageTokens = 16
        o.textTokens = 24
        o.dtype = dtype
        o.codec = codec
        o.storeQuery = query
        o.probes = probes
        o.window = window
        return o
    }

    @discardableResult
    static func write(_ o: SynthOptions, to path: String) throws -> String {
        _ = try SyntheticDump.write(o, to: path, force: false, threads: 2)
        return path
    }

    /// The package root (for ../shared/golden and Fixtures/).
    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }
}

/// Raw HDF5 edits that make a valid file invalid in one precise way. Tests only: lookm itself never
/// opens a file for writing that it did not create.
final class FileEditor {
    let id: hid_t

    init(_ path: String) {
        H5Library.initialize()
        id = H5Fopen(path, h5f_acc_rdwr(), h5_default())
        precondition(id >= 0, "cannot open \(path) for editing")
    }

    deinit { H5Fclose(id) }

    func deleteAttribute(_ name: String, at object: String = "/") {
        precondition(H5Adelete_by_name(id, object, name, h5_default()) >= 0, "delete attribute \(name)")
    }

    func setInt(_ name: String, _ value: Int64, at object: String = "/") {
        if H5Aexists_by_name(id, object, name, h5_default()) > 0 { deleteAttribute(name, at: object) }
        let space = H5Screate(H5S_SCALAR)
        let attr = H5Acreate_by_name(id, object, name, h5t_std_i64le(), space, h5_default(), h5_default(), h5_default())
        var v = value
        H5Awrite(attr, h5t_native_int64(), &v)
        H5Aclose(attr)
        H5Sclose(space)
    }

    func setString(_ name: String, _ value: String, at object: String = "/") {
        if H5Aexists_by_name(id, object, name, h5_default()) > 0 { deleteAttribute(name, at: object) }
        let type = H5Tcopy(h5t_c_s1())
        H5Tset_size(type, h5t_variable())
        H5Tset_cset(type, H5T_CSET_UTF8)
        let space = H5Screate(H5S_SCALAR)
        let attr = H5Acreate_by_name(id, object, name, type, space, h5_default(), h5_default(), h5_default())
        value.withCString { cs in
            var p: UnsafePointer<CChar>? = cs
            _ = H5Awrite(attr, type, &p)
        }
        H5Aclose(attr)
        H5Sclose(space)
        H5Tclose(type)
    }

    func delete(_ path: String) {
        precondition(H5Ldelete(id, path, h5_default()) >= 0, "delete \(path)")
    }

    /// Replaces a dataset by one of `shape` and `type` filled from `values` (memory type `memType`).
    func replace<T: BitwiseCopyable>(
        _ path: String, shape: [Int], type: hid_t, memType: hid_t, values: [T],
        filter: (id: H5Z_filter_t, optional: Bool)? = nil
    ) {
        if H5Lexists(id, path, h5_default()) > 0 { delete(path) }
        let dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        let dcpl = H5Pcreate(h5p_dataset_create())
        if let filter {
            H5Pset_chunk(dcpl, Int32(dims.count), dims)
            H5Pset_filter(dcpl, filter.id, filter.optional ? h5z_flag_optional() : h5z_flag_mandatory(), 0, nil)
        }
        let ds = H5Dcreate2(id, path, type, space, h5_default(), dcpl, h5_default())
        precondition(ds >= 0, "create \(path)")
        if !values.isEmpty {
            _ = values.withUnsafeBytes { H5Dwrite(ds, memType, h5s_all(), h5s_all(), h5_default(), $0.baseAddress) }
        }
        H5Dclose(ds)
        H5Pclose(dcpl)
        H5Sclose(space)
    }

    /// Overwrites one element of a float dataset (HDF5 converts from float32 to the stored type).
    func poke(_ path: String, at index: [Int], _ value: Float) {
        let ds = H5Dopen2(id, path, h5_default())
        let fs = H5Dget_space(ds)
        let start = index.map { hsize_t($0) }
        let count = index.map { _ in hsize_t(1) }
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nil, count, nil)
        let ms = H5Screate_simple(1, [1], nil)
        var v = value
        H5Dwrite(ds, h5t_native_float(), ms, fs, h5_default(), &v)
        H5Sclose(ms)
        H5Sclose(fs)
        H5Dclose(ds)
    }
}
