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

void lookm_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
