// swift-tools-version:6.0
import PackageDescription

// lookm: offline LOOK-M KV-cache compression for multimodal LLM dumps.
// System libraries come from Debian (scripts/setup.sh installs them); Swift packages only from
// the machine's offline mirror.
let package = Package(
    name: "lookm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lookm", targets: ["lookm"]),
        .library(name: "LookM", targets: ["LookM"]),
        // HDF5 filter plugin (zstd, 32015) for h5dump/h5ls: HDF5_PLUGIN_PATH=.build/release
        .library(name: "H5ZLookMZstd", type: .dynamic, targets: ["H5ZLookMZstd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // HDF5 1.10 (Debian libhdf5-dev). shim.h turns HDF5's macros into functions Swift 6 can call.
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // float16/bfloat16 conversion and other tight loops: F16C with a runtime check, scalar fallback.
        .target(name: "CKernels"),
        // PyTorch's CPU top-k tie order, by calling libstdc++'s own algorithms (method.md rule 7).
        .target(name: "CTopK"),
        .target(name: "H5ZLookMZstd", dependencies: ["CHDF5", "CZstd"]),
        .target(name: "LookM", dependencies: ["CHDF5", "CZstd", "COpenBLAS", "CKernels", "CTopK"]),
        .executableTarget(
            name: "lookm",
            dependencies: [
                "LookM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "LookMTests", dependencies: ["LookM", "CKernels", "CHDF5"]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
