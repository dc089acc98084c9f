/* The subcommands of `mutualnet`. Each takes the arguments after its name (argv[0] is the
 * command name) and returns the process exit status. Only tools/ may print and exit. */
#ifndef MN_TOOLS_COMMANDS_H
#define MN_TOOLS_COMMANDS_H

#include <stdio.h>

struct mn_config;

int mn_cmd_synth(int argc, char **argv);
int mn_cmd_coco_eval(int argc, char **argv);
int mn_cmd_miou(int argc, char **argv);
int mn_cmd_flops(int argc, char **argv);
int mn_cmd_bench(int argc, char **argv);
int mn_cmd_train(int argc, char **argv);
int mn_cmd_eval(int argc, char **argv);
int mn_cmd_calibrate(int argc, char **argv);
int mn_cmd_predict(int argc, char **argv);
int mn_cmd_story(int argc, char **argv);
int mn_cmd_plot(int argc, char **argv);
int mn_cmd_info(int argc, char **argv);
int mn_cmd_data(int argc, char **argv);
int mn_cmd_export(int argc, char **argv);

/* The cheap part of `mutualnet data check` (cmd_data.c), which training prints at its start: opens the
 * training split, prints its class mapping (value or id -> index -> name, one line per class) and both
 * splits' sizes to f. Reads no image; a split that does not open returns its error unprinted. */
int mn_data_print_classes(FILE *f, const struct mn_config *c);

/* Exit statuses shared by the commands. */
enum { MN_EXIT_OK = 0, MN_EXIT_FAIL = 1, MN_EXIT_USAGE = 2 };

#endif
