// libedit's native API (el_*, history_*, tok_*). `make` installs libedit-dev.
#include <stdio.h>
#include <histedit.h>
