#define _GNU_SOURCE
#include "CKernels.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <link.h>
#include <execinfo.h>
#include <stdint.h>

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

/* Where libhdf5's code is mapped: a fault with HDF5 on the stack happened while HDF5 parsed a
   file, and the file is to blame; any other fault is lookm's own. */
#define MAX_RANGES 8
static uintptr_t hdf5_lo[MAX_RANGES], hdf5_hi[MAX_RANGES];
static int hdf5_ranges;

static int find_hdf5(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libhdf5")) return 0;
    for (int i = 0; i < info->dlpi_phnum && hdf5_ranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            hdf5_lo[hdf5_ranges] = info->dlpi_addr + ph->p_vaddr;
            hdf5_hi[hdf5_ranges] = hdf5_lo[hdf5_ranges] + ph->p_memsz;
            hdf5_ranges++;
        }
    }
    return 0;
}

static int in_hdf5(void *pc) {
    uintptr_t a = (uintptr_t)pc;
    for (int i = 0; i < hdf5_ranges; i++) if (a >= hdf5_lo[i] && a < hdf5_hi[i]) return 1;
    return 0;
}

/* HDF5 1.10 can dereference wild pointers on damaged metadata (seen: H5HG_read on a corrupt
   global heap while reading a string attribute). Such a file is invalid input: say so, remove
   temporary files and exit 3 instead of dying by a signal. A fault without HDF5 on the stack is
   a bug of lookm's own: exit 1, never blamed on the input. */
static void on_fault(int sig) {
    for (int i = 0; i < SLOTS; i++) if (used[i]) unlink(paths[i]);
    void *frames[128];
    int n = backtrace(frames, 128);   /* preloaded at install: no allocation here */
    int hdf5 = 0;
    for (int i = 0; i < n && !hdf5; i++) hdf5 = in_hdf5(frames[i]);
    if (reading_input && hdf5) {
        say("lookm: ");
        say(input_name);
        say(": damaged file: the HDF5 library failed reading its metadata\n");
        _exit(3);
    }
    say("lookm: internal error (signal ");
    char digits[4] = {(char)('0' + sig / 10), (char)('0' + sig % 10), ')', 0};
    say(digits);
    say(": a bug in lookm, not a problem of the input; please report it with the command line\n");
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

    dl_iterate_phdr(find_hdf5, NULL);
    void *warm[2];
    backtrace(warm, 2);   /* loads the unwinder now: the fault handler must not */

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
