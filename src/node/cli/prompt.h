/* prompt.h - questions on the terminal (config init, confirmations). */
#ifndef MANTA_PROMPT_H
#define MANTA_PROMPT_H

#include <stdbool.h>

/* True when both standard input and standard output are terminals. */
bool prompt_interactive(void);

/* Ask "question [def]: " and read a line. Returns the answer (owned; def if the answer is
 * empty and def is non-NULL) or NULL at end of input. */
char *prompt_line(const char *question, const char *def);

/* Ask with echo off (tokens, passwords). Returns owned text ("" if empty) or NULL at EOF. */
char *prompt_secret(const char *question);

/* Ask "question [y/N]: " (or [Y/n]). Returns 1 for yes, 0 for no, -1 at end of input. The
 * answer is read from standard input whatever it is: `echo y | manta_node ...` answers too
 * (as with the reference); an answer that does not come from a terminal is echoed after the
 * question, so the transcript reads as it would have on one. */
int prompt_yes_no(const char *question, bool def);

#endif
