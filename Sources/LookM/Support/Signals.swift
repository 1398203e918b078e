import CKernels

/// SIGINT/SIGTERM/SIGHUP remove the temporary files of outputs in progress (registered by
/// `AtomicOutput` and `InputFile`), then exit 128 + signal; SIGPIPE is ignored so that writes to a
/// closed pipe fail with an error instead of killing lookm; a memory fault while reading an input
/// (HDF5 on damaged metadata) exits 3 naming the file. Called once by the executable.
public func installSignalHandlers() {
    lookm_install_signal_handlers()
}
