import CHDF5
import CKernels

/// An open HDF5 file. Input files are opened read-only; output files are created fresh (never
/// truncating something that exists), and must be `flush()`ed before they are renamed into place.
final class H5File {
    let handle: H5Handle
    let site: H5Site

    private init(handle: H5Handle, site: H5Site) {
        self.handle = handle
        self.site = site
    }

    /// Opens `path` read-only. `displayName` is what error messages call the file ("-" for stdin).
    static func openForReading(_ path: String, displayName: String? = nil) throws -> H5File {
        H5Library.initialize()
        let site = H5Site(file: displayName ?? path, side: .input)
        lookm_set_input(site.file)
        guard H5Fis_hdf5(path) > 0 else {
            H5Eclear2(h5e_default())
            throw site.error(nil, "not an HDF5 file (or not readable)")
        }
        let id = H5Fopen(path, h5f_acc_rdonly(), h5_default())
        let file = H5File(handle: try site.own(id, nil, "opening the file", closer: H5Fclose), site: site)
        try file.requireSelfContained()
        return file
    }

    /// A lookm file is one self-contained file: links into other files, raw data kept in other
    /// files and virtual datasets are refused before any data is read (they would let a "dump"
    /// read /etc/passwd into a cache, or read a missing source as zeros).
    private func requireSelfContained() throws {
        var found = lookm_foreign_t()
        let status = lookm_h5_find_foreign(handle.id, &found)
        let path = withUnsafeBytes(of: found.path) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch Int(found.kind) {
        case LOOKM_FOREIGN_NONE:
            try site.check(status, nil, "listing the file's objects")
            return
        case LOOKM_FOREIGN_EXTERNAL_LINK:
            throw site.error(
                path,
                "is an external link to another file; a lookm file must be self-contained (h5repack can copy the data in)"
            )
        case LOOKM_FOREIGN_USER_LINK:
            throw site.error(path, "is a user-defined link; a lookm file may hold only hard and soft links")
        case LOOKM_FOREIGN_EXTERNAL_RAW:
            throw site.error(
                path,
                "keeps its data in external files; a lookm file must be self-contained (h5repack can copy the data in)")
        case LOOKM_FOREIGN_VIRTUAL:
            throw site.error(
                path,
                "is a virtual dataset (its data lives elsewhere); a lookm file must be self-contained (h5repack can copy the data in)"
            )
        default:
            H5Eclear2(h5e_default())
            throw site.error(path, "cannot be opened: damaged object header")
        }
    }

    /// Creates a new file at `path`, failing if something already exists there.
    static func create(_ path: String, displayName: String? = nil) throws -> H5File {
        H5Library.initialize()
        let site = H5Site(file: displayName ?? path, side: .output)
        let id = H5Fcreate(path, h5f_acc_excl(), h5_default(), h5_default())
        return H5File(handle: try site.own(id, nil, "creating the file", closer: H5Fclose), site: site)
    }

    /// Whether an object (group or dataset) exists at an absolute path like `/layers/0/key`.
    func exists(_ path: String) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(handle.id, prefix, h5_default()) > 0 else { return false }
            guard H5Oexists_by_name(handle.id, prefix, h5_default()) > 0 else { return false }
        }
        return true
    }

    /// Whether `path` exists and is a dataset.
    func isDataset(_ path: String) -> Bool { objectType(path) == H5O_TYPE_DATASET }

    /// Whether `path` exists and is a group.
    func isGroup(_ path: String) -> Bool { objectType(path) == H5O_TYPE_GROUP }

    private func objectType(_ path: String) -> H5O_type_t? {
        guard exists(path) else { return nil }
        var info = H5O_info_t()
        guard H5Oget_info_by_name2(handle.id, path, &info, UInt32(H5O_INFO_BASIC), h5_default()) >= 0 else {
            H5Eclear2(h5e_default())
            return nil
        }
        return info.type
    }

    func openDataset(_ path: String) throws -> H5Dataset {
        try H5Dataset.open(in: self, path: path)
    }

    /// Creates the groups of `path` that do not exist yet, without modification times (HDF5
    /// stores them by default), so that the same content always gives the same file bytes.
    func createGroups(_ path: String) throws {
        let gcpl = try site.own(H5Pcreate(h5p_group_create()), path, "making a group property list", closer: H5Pclose)
        try site.check(H5Pset_obj_track_times(gcpl.id, false), path, "turning off time tracking")
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if H5Lexists(handle.id, prefix, h5_default()) > 0 { continue }
            _ = try site.own(
                H5Gcreate2(handle.id, prefix, h5_default(), gcpl.id, h5_default()), prefix, "creating the group",
                closer: H5Gclose)
        }
    }

    /// Attributes of the group at `path`.
    func groupAttributes(_ path: String) throws -> H5Attributes {
        let group = try site.own(H5Gopen2(handle.id, path, h5_default()), path, "opening the group", closer: H5Gclose)
        return H5Attributes(owner: group, site: site, objectPath: path)
    }

    /// Attributes of the root group.
    func rootAttributes() throws -> H5Attributes {
        let group = try site.own(
            H5Gopen2(handle.id, "/", h5_default()), "/", "opening the root group", closer: H5Gclose)
        return H5Attributes(owner: group, site: site, objectPath: "/")
    }

    /// Size of the file in bytes (for plausibility checks of declared sizes).
    var sizeBytes: Int {
        var size: hsize_t = 0
        return H5Fget_filesize(handle.id, &size) >= 0 ? Int(size) : Int.max
    }

    /// Writes everything HDF5 buffers to the file; errors here (disk full) are output errors.
    func flush() throws {
        try site.check(H5Fflush(handle.id, H5F_SCOPE_GLOBAL), nil, "flushing the file")
    }
}
