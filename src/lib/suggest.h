/* suggest.h - "did you mean": the closest of a list of names to a word that is not one of
 * them (configuration keys, swarm-file keys, task aliases). */
#ifndef MANTA_SUGGEST_H
#define MANTA_SUGGEST_H

#include <stddef.h>

/* Edit distance with adjacent transpositions (optimal string alignment), case-insensitive:
 * "nmae" is one edit from "name". Words over 64 bytes count as far from everything. */
size_t suggest_distance(const char *a, const char *b);

/* The candidate closest to word if it is close enough to be a likely typo (1 edit for words of
 * up to 4 characters, 2 up to 8, 3 beyond), else NULL. Borrowed from cands. */
const char *suggest_closest(const char *word, const char *const *cands, size_t n);

#endif
