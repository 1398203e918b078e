/* HDF5 filter plugin for zstd (filter id 32015), for HDF5's own tools (h5dump, h5ls) linked with
   Debian's HDF5: put the directory holding libH5ZLookMZstd.so in HDF5_PLUGIN_PATH. The chunk format is
   the one of lookm's in-process filter and of h5py's hdf5plugin: one zstd frame per chunk,
   cd_values[0] = compression level. */
#ifndef LOOKM_H5Z_ZSTD_H
#define LOOKM_H5Z_ZSTD_H
#include <H5PLextern.h>
#endif
