/*
 * asan_initfirst.c
 *	  Start AddressSanitizer's runtime before any other library's
 *	  constructor, for scripts/asan.sh.
 *
 * Debian's postgres is not instrumented, so the runtime comes in through
 * LD_PRELOAD, and a preloaded library is initialized after the libraries
 * the program needs.  One of those, p11-kit (through libldap and gnutls),
 * calls newlocale() in its constructor; the runtime, started from inside
 * that call by its first intercepted function, leaves glibc's locale lock
 * broken and the process hangs at its next setlocale() or at exit.  This
 * object is marked -z initfirst, so the dynamic linker runs its
 * constructor before every other one: the runtime is up before anyone
 * calls it.
 */
extern void __asan_init(void);

__attribute__((constructor))
static void
asan_init_first(void)
{
	__asan_init();
}
