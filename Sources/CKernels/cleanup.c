#include "CKernels.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>

/* Temporary files to remove if the process is interrupted. The handler may only call
   async-signal-safe functions (unlink, _exit), so the paths live in a fixed table of
   preallocated buffers that the handler reads as they are. */
#define SLOTS 16
#define PATH_MAX_BYTES 4096
static char paths[SLOTS][PATH_MAX_BYTES];
static volatile sig_atomic_t used[SLOTS];

int lookm_cleanup_register(const char *path) {
    size_t n = strlen(path);
    if (n >= PATH_MAX_BYTES) return -1;
    for (int i = 0; i < SLOTS; i++) {
        if (!used[i]) {
            memcpy(paths[i], path, n + 1);
            used[i] = 1;
            return i;
        }
    }
    return -1;
}

void lookm_cleanup_unregister(int slot) {
    if (slot >= 0 && slot < SLOTS) used[slot] = 0;
}

static void on_signal(int sig) {
    for (int i = 0; i < SLOTS; i++) if (used[i]) unlink(paths[i]);
    _exit(128 + sig);
}

/* The input being read, for the fault handler's message. */
static char input_name[PATH_MAX_BYTES];
static volatile sig_atomic_t reading_input;

void lookm_set_input(const char *name) {
    size_t n = strlen(name);
    if (n >= PATH_MAX_BYTES - 1) n = PATH_MAX_BYTES - 1;
    reading_input = 0;
    memcpy(input_name, name, n);
    input_name[n] = 0;
    reading_input = 1;
}

static void say(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* HDF5 1.10 can dereference wild pointers on damaged metadata (seen: H5HG_read on a corrupt
   global heap while reading a string attribute). Such a file is invalid input: say so, remove
   temporary files and exit 3 instead of dying by a signal. */
static void on_fault(int sig) {
    for (int i = 0; i < SLOTS; i++) if (used[i]) unlink(paths[i]);
    if (reading_input) {
        say("lookm: ");
        say(input_name);
        say(": damaged file: the HDF5 library failed reading its metadata\n");
        _exit(3);
    }
    say("lookm: internal fault (signal ");
    char digits[4] = {(char)('0' + sig / 10), (char)('0' + sig % 10), ')', 0};
    say(digits);
    say("\n");
    _exit(1);
}

void lookm_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static char alt[1 << 16];
    stack_t ss;
    ss.ss_sp = alt;
    ss.ss_size = sizeof alt;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    struct sigaction fa;
    memset(&fa, 0, sizeof fa);
    fa.sa_handler = on_fault;
    fa.sa_flags = SA_ONSTACK;
    sigemptyset(&fa.sa_mask);
    sigaction(SIGSEGV, &fa, NULL);
    sigaction(SIGBUS, &fa, NULL);
}
