/* prompt.c - questions on the terminal; see prompt.h. */
#include "prompt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "mem.h"

bool prompt_interactive(void)
{
    return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
}

static char *read_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* trim */
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    char *out = xstrdup(s);
    free(line);
    return out;
}

char *prompt_line(const char *question, const char *def)
{
    if (def && *def)
        printf("%s [%s]: ", question, def);
    else
        printf("%s: ", question);
    fflush(stdout);
    char *ans = read_line();
    if (!ans)
        return NULL;
    if (!*ans && def) {
        free(ans);
        return xstrdup(def);
    }
    return ans;
}

char *prompt_secret(const char *question)
{
    printf("%s: ", question);
    fflush(stdout);
    struct termios old, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *ans = read_line();
    if (tty)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    else
        putchar('\n');
    fflush(stdout);
    return ans;
}

int prompt_yes_no(const char *question, bool def)
{
    for (int tries = 0; tries < 10; tries++) {
        printf("%s [%s]: ", question, def ? "Y/n" : "y/N");
        fflush(stdout);
        cleanup_free char *ans = read_line();
        if (!isatty(STDIN_FILENO)) { /* no terminal echoed it */
            printf("%s\n", ans ? ans : "");
            fflush(stdout);
        }
        if (!ans)
            return -1;
        if (!*ans)
            return def;
        if (strcasecmp(ans, "y") == 0 || strcasecmp(ans, "yes") == 0)
            return 1;
        if (strcasecmp(ans, "n") == 0 || strcasecmp(ans, "no") == 0)
            return 0;
        printf("Please answer yes or no.\n");
    }
    return -1;
}
