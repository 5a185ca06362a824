// libedit's native API (el_*, history_*, tok_*). `make` installs libedit-dev.
//
// Swift cannot call C variadic functions, so every el_set/el_get/history call the REPL
// needs has a fixed-argument wrapper here (nb_ prefix).
#include <stdio.h>
#include <histedit.h>

typedef unsigned char (*nb_el_func_t)(EditLine *, int);
typedef char *(*nb_el_prompt_t)(EditLine *);

/// EL_PROMPT_ESC: `fn` returns the prompt; text between two `esc` characters is
/// printed but takes no columns (ANSI colour sequences).
static inline int nb_el_set_prompt(EditLine *el, nb_el_prompt_t fn, char esc) {
    return el_set(el, EL_PROMPT_ESC, fn, esc);
}

/// EL_EDITOR: "emacs" or "vi".
static inline int nb_el_set_editor(EditLine *el, const char *mode) {
    return el_set(el, EL_EDITOR, mode);
}

/// EL_HIST: Up/Down and incremental search walk `h`.
static inline int nb_el_set_history(EditLine *el, History *h) {
    return el_set(el, EL_HIST, history, h);
}

/// EL_BIND: `key` (e.g. "^C", "^I", "\\e[A") runs the editor command `command`.
static inline int nb_el_bind(EditLine *el, const char *key, const char *command) {
    return el_set(el, EL_BIND, key, command, (const char *)NULL);
}

/// EL_ADDFN: a user function callable by name from bindings.
static inline int nb_el_addfn(EditLine *el, const char *name, const char *help, nb_el_func_t fn) {
    return el_set(el, EL_ADDFN, name, help, fn);
}

/// EL_SETTY: one stty-style setting for a mode ("-d" edit mode, "-x" execute mode).
static inline int nb_el_setty(EditLine *el, const char *mode, const char *setting) {
    return el_set(el, EL_SETTY, mode, setting, (const char *)NULL);
}

/// EL_CLIENTDATA: an opaque pointer user functions can fetch back.
static inline int nb_el_set_clientdata(EditLine *el, void *data) {
    return el_set(el, EL_CLIENTDATA, data);
}

static inline void *nb_el_clientdata(EditLine *el) {
    void *data = NULL;
    if (el_get(el, EL_CLIENTDATA, &data) != 0) return NULL;
    return data;
}

/// EL_SIGNAL: whether libedit installs its own signal handlers while editing.
static inline int nb_el_set_signal(EditLine *el, int on) {
    return el_set(el, EL_SIGNAL, on);
}

/// The terminal width libedit uses (termcap "co"), 80 if unknown.
static inline int nb_el_columns(EditLine *el) {
    int columns = 0;
    if (el_get(el, EL_GETTC, "co", &columns, (void *)NULL) != 0 || columns <= 0) return 80;
    return columns;
}

/// H_SETSIZE: keep at most `size` entries in memory.
static inline int nb_history_setsize(History *h, int size) {
    HistEvent ev;
    return history(h, &ev, H_SETSIZE, size);
}

/// H_ENTER: add `line` as the newest entry.
static inline int nb_history_enter(History *h, const char *line) {
    HistEvent ev;
    return history(h, &ev, H_ENTER, line);
}

/// H_CLEAR: forget every entry.
static inline int nb_history_clear(History *h) {
    HistEvent ev;
    return history(h, &ev, H_CLEAR);
}
