import ArgumentParser
import LookM

#if canImport(Glibc)
    import Glibc
#endif

// Every failure leaves through here: one line on stderr and the exit code of the README's table.
// swift-argument-parser's own usage failures (its code 64) become 2, like lookm's usage errors.
// Interrupts remove temporary files before exiting; a closed downstream pipe ends lookm with a
// status, not a signal.
installSignalHandlers()
do {
    var command = try LookmCommand.parseAsRoot()
    try command.run()
} catch let error as LookMError {
    if !error.message.isEmpty { printError("lookm: \(error.message)") }  // empty: a closed pipe, quiet
    // _exit: after a failed write (disk full) HDF5's exit-time cleanup retries the flush of the
    // file it could not close and can crash; every temporary file is already gone by now.
    fflush(nil)  // what a command printed before failing (collect's table) still reaches stdout
    _exit(error.exitCode)
} catch {
    let code = LookmCommand.exitCode(for: error)
    let message = LookmCommand.fullMessage(for: error)
    if code == .success {
        print(message)
        exit(0)
    }
    printError(message)
    exit(code == .validationFailure ? LookMError.Kind.usage.rawValue : code.rawValue)
}
