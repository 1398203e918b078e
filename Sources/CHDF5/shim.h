// HDF5's constants are macros that expand to global ids behind H5open() (H5T_NATIVE_FLOAT) or to
// casts (H5F_ACC_TRUNC); Swift 6 imports neither. These getters are the only way LookM reaches them.
#ifndef LOOKM_CHDF5_SHIM_H
#define LOOKM_CHDF5_SHIM_H
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdio.h>

static inline hid_t    h5_default(void)         { return H5P_DEFAULT; }
static inline hid_t    h5s_all(void)            { return H5S_ALL; }
static inline unsigned h5f_acc_trunc(void)      { return H5F_ACC_TRUNC; }
static inline unsigned h5f_acc_excl(void)       { return H5F_ACC_EXCL; }
static inline unsigned h5f_acc_rdonly(void)     { return H5F_ACC_RDONLY; }
/* Tests only: lookm never opens a file it did not create for writing. */
static inline unsigned h5f_acc_rdwr(void)       { return H5F_ACC_RDWR; }
static inline hid_t    h5t_native_float(void)   { return H5T_NATIVE_FLOAT; }
static inline hid_t    h5t_native_double(void)  { return H5T_NATIVE_DOUBLE; }
static inline hid_t    h5t_native_int32(void)   { return H5T_NATIVE_INT32; }
static inline hid_t    h5t_native_int64(void)   { return H5T_NATIVE_INT64; }
static inline hid_t    h5t_native_uint8(void)   { return H5T_NATIVE_UINT8; }
static inline hid_t    h5t_native_uint16(void)  { return H5T_NATIVE_UINT16; }
static inline hid_t    h5t_std_u8le(void)       { return H5T_STD_U8LE; }
static inline hid_t    h5t_std_u16le(void)      { return H5T_STD_U16LE; }
static inline hid_t    h5t_std_i32le(void)      { return H5T_STD_I32LE; }
static inline hid_t    h5t_std_i64le(void)      { return H5T_STD_I64LE; }
static inline hid_t    h5t_ieee_f32le(void)     { return H5T_IEEE_F32LE; }
static inline hid_t    h5t_ieee_f64le(void)     { return H5T_IEEE_F64LE; }
static inline hid_t    h5t_c_s1(void)           { return H5T_C_S1; }
static inline size_t   h5t_variable(void)       { return H5T_VARIABLE; }
static inline hid_t    h5p_file_access(void)    { return H5P_FILE_ACCESS; }
static inline hid_t    h5p_file_create(void)    { return H5P_FILE_CREATE; }
static inline hid_t    h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t    h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline hid_t    h5p_group_create(void)   { return H5P_GROUP_CREATE; }
static inline hid_t    h5e_default(void)        { return H5E_DEFAULT; }
static inline unsigned h5z_flag_mandatory(void) { return H5Z_FLAG_MANDATORY; }
static inline unsigned h5z_flag_optional(void)  { return H5Z_FLAG_OPTIONAL; }
static inline unsigned h5z_flag_reverse(void)   { return H5Z_FLAG_REVERSE; }
static inline int      h5z_class_t_vers(void)   { return H5Z_CLASS_T_VERS; }
static inline H5Z_filter_t h5z_filter_deflate(void) { return H5Z_FILTER_DEFLATE; }
static inline H5Z_filter_t h5z_filter_shuffle(void) { return H5Z_FILTER_SHUFFLE; }

/// Turns off HDF5's printing of its error stack; LookM collects the messages itself.
static inline void h5_errors_off(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// IEEE half exactly as h5py builds it (h5py reports dtype float16).
static inline hid_t h5t_make_f16le(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    H5Tset_fields(t, 15, 10, 5, 0, 10);   /* spos, epos, esize, mpos, msize */
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* What makes a file depend on others: the first object found is reported by
   `lookm_h5_find_foreign`. A dump or cache must be one self-contained file, so readers refuse all
   of these before reading any data (an external raw file could be /etc/passwd; a virtual
   dataset whose source is missing reads as zeros). */
enum {
    LOOKM_FOREIGN_NONE = 0,
    LOOKM_FOREIGN_EXTERNAL_LINK = 1,   /* a link into another file */
    LOOKM_FOREIGN_USER_LINK = 2,       /* a user-defined link type */
    LOOKM_FOREIGN_EXTERNAL_RAW = 3,    /* raw data stored in other files (H5Pset_external) */
    LOOKM_FOREIGN_VIRTUAL = 4,         /* a virtual dataset (data mapped from other datasets/files) */
    LOOKM_FOREIGN_UNREADABLE = 5       /* an object HDF5 cannot open */
};

typedef struct {
    int kind;
    char path[1024];
} lookm_foreign_t;

static inline herr_t lookm_h5_visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    lookm_foreign_t *out = (lookm_foreign_t *)data;
    int kind = LOOKM_FOREIGN_NONE;
    if (info->type == H5L_TYPE_EXTERNAL) {
        kind = LOOKM_FOREIGN_EXTERNAL_LINK;
    } else if (info->type != H5L_TYPE_HARD && info->type != H5L_TYPE_SOFT) {
        kind = LOOKM_FOREIGN_USER_LINK;
    } else if (info->type == H5L_TYPE_HARD) {
        hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
        if (obj < 0) {
            kind = LOOKM_FOREIGN_UNREADABLE;
        } else {
            if (H5Iget_type(obj) == H5I_DATASET) {
                hid_t dcpl = H5Dget_create_plist(obj);
                if (dcpl < 0) {
                    kind = LOOKM_FOREIGN_UNREADABLE;
                } else {
                    if (H5Pget_layout(dcpl) == H5D_VIRTUAL) kind = LOOKM_FOREIGN_VIRTUAL;
                    else if (H5Pget_external_count(dcpl) != 0) kind = LOOKM_FOREIGN_EXTERNAL_RAW;
                    H5Pclose(dcpl);
                }
            }
            H5Oclose(obj);
        }
    }
    if (kind == LOOKM_FOREIGN_NONE) return 0;
    out->kind = kind;
    snprintf(out->path, sizeof out->path, "/%s", name);
    return 1;   /* stop at the first one */
}

/* Visits every link of the file; returns < 0 if the visit itself failed (damaged metadata). */
static inline herr_t lookm_h5_find_foreign(hid_t file, lookm_foreign_t *out) {
    out->kind = LOOKM_FOREIGN_NONE;
    out->path[0] = 0;
    return H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, lookm_h5_visit_link, out);
}
#endif
