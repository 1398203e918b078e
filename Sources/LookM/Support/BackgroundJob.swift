import Dispatch
import Foundation

/// Work started on a background thread and waited for later: the caller keeps the thread that owns
/// HDF5 free for reads and writes meanwhile.
final class BackgroundJob<T>: @unchecked Sendable {
    private var result: Result<T, Error>?
    private var body: (() throws -> T)?
    private var finally: (() -> Void)?
    private let done = DispatchSemaphore(value: 0)

    /// `finally` runs on the background thread once `body` returned or threw. Both closures are
    /// released before `wait()` returns: what they captured (an output file about to be
    /// discarded on error) must not outlive the caller's scope.
    init(_ body: @escaping () throws -> T, finally: @escaping () -> Void = {}) {
        self.body = body
        self.finally = finally
        DispatchQueue.global().async {
            self.result = Result { try self.body!() }
            self.finally?()
            self.body = nil
            self.finally = nil
            self.done.signal()
        }
    }

    /// Blocks until the job ended; its value or its error.
    func wait() throws -> T {
        done.wait()
        return try result!.get()
    }
}

/// One flag per item, set once by workers and awaited by another thread: "head g's input buffer
/// may be reused". Setting twice is harmless; `releaseAll` unblocks every waiter (a job that
/// failed before reaching some items).
final class ReleaseFlags: @unchecked Sendable {
    private let condition = NSCondition()
    private var released: [Bool]

    init(count: Int) { released = [Bool](repeating: false, count: count) }

    func release(_ i: Int) {
        condition.lock()
        released[i] = true
        condition.broadcast()
        condition.unlock()
    }

    func releaseAll() {
        condition.lock()
        for i in released.indices { released[i] = true }
        condition.broadcast()
        condition.unlock()
    }

    func wait(_ i: Int) {
        condition.lock()
        while !released[i] { condition.wait() }
        condition.unlock()
    }
}
