/* mutualnet train: one mutual-learning run from a JSON configuration. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mn/train.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet train --config FILE [--set KEY=VALUE]... [--resume CHECKPOINT]\n"
               "       mutualnet train --help-config\n\n"
               "Trains the configured model with mutual learning across widths and input scales. Writes\n"
               "<train.out_dir>/last.safetensors (every train.checkpoint_every iterations, atomically),\n"
               "metrics.jsonl and config.json. --resume continues a run from its checkpoint with the same\n"
               "losses an uninterrupted run would have had. --set overrides one configuration key, e.g.\n"
               "--set train.iterations=200 --set model.backbone=resnet50. --help-config lists every key.\n"
               "Detection (\"task\": \"detection\", COCO-format data) also evaluates COCO AP on the validation\n"
               "split at the end and writes <train.out_dir>/val_results.json.\n");
}

int mn_cmd_train(int argc, char **argv)
{
    const char *cfg_path = NULL, *resume = NULL;
    mn_config c;
    mn_config_default(&c);
    const char *sets[64];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--help-config")) {
            mn_config_describe(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--config")) {
            if (!(cfg_path = mn_arg_value("train", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--resume")) {
            if (!(resume = mn_arg_value("train", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--set")) {
            if (!(sets[n_sets] = mn_arg_value("train", argc, argv, &i))) return MN_EXIT_USAGE;
            if (++n_sets == 64) {
                fprintf(stderr, "mutualnet train: too many --set options\n");
                return MN_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "mutualnet train: unknown option %s (see mutualnet train --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "mutualnet train: --config FILE is required (configs/ has one per recipe)\n");
        return MN_EXIT_USAGE;
    }
    if (mn_config_load(cfg_path, &c)) {
        fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    for (int i = 0; i < n_sets; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof key) {
            fprintf(stderr, "mutualnet train: --set expects KEY=VALUE, not \"%s\"\n", sets[i]);
            return MN_EXIT_USAGE;
        }
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        if (mn_config_set(&c, key, eq + 1)) {
            fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
            return MN_EXIT_USAGE;
        }
    }
    int rc = c.task == MN_TASK_SEGMENTATION ? mn_train_segmentation(&c, resume, 0)
             : c.task == MN_TASK_DETECTION  ? mn_train_detection(&c, resume, 0)
                                            : mn_train_classification(&c, resume, 0);
    if (rc) {
        fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    fprintf(stderr, "mutualnet train: done; checkpoint %s/last.safetensors, metrics %s/metrics.jsonl\n", c.train.out_dir,
            c.train.out_dir);
    return MN_EXIT_OK;
}
