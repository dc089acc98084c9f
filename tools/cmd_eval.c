/* mutualnet eval: a checkpoint's validation scores at one configuration. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "report.h"
#include "mn/model.h"
#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/dist.h"
#include "mn/seg_eval.h"
#include "select.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet eval --checkpoint FILE [--budget MACS | --budget-ms T | --width W --size S|HxW]\n"
               "                      [--split NAME] [--max-images N] [--results FILE]\n\n"
               "Scores a checkpoint on a split of its data set (default: the configured validation split).\n"
               "Segmentation prints JSON {\"mIoU\", \"aAcc\", \"mAcc\", \"IoU\": [per class, null if absent], \"width\",\n"
               "\"size\", \"macs\"}. Detection prints COCO's 12 numbers {\"AP\", \"AP50\", \"AP75\", \"APs\", \"APm\", \"APl\",\n"
               "\"AR1\", \"AR10\", \"AR100\", \"ARs\", \"ARm\", \"ARl\"} (-1 where the split has no such ground truth) with\n"
               "\"width\", \"short_side\", \"max_side\", \"input\", \"macs\", \"images\", and --results FILE writes the\n"
               "detections as a COCO results JSON. --budget (e.g. 1.5G) picks the most accurate calibrated\n"
               "configuration that fits; --budget-ms T (e.g. 20) the most accurate whose milliseconds per image,\n"
               "as calibrate --latency measured them, fit; --width/--size pick one directly (default: full width\n"
               "at data.eval_size, or at det.short_side for a detector, whose --size is one short side S).\n"
               "Classification prints {\"top1\", \"top5\", \"width\", \"size\", \"macs\", \"images\"}.\n");
}

static int eval_det(const char *ckpt, const mn_choice *ch, const char *split, int max_images, const char *results,
                    mn_comm *comm)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    bool speaker = mn_comm_rank(comm) == 0;
    mn_det_model m;
    if (mn_det_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int side, rc = MN_EXIT_FAIL;
    int64_t macs;
    mn_dataset *d = NULL;
    mn_det_scores s;
    int pick = mn_choice_apply_det("eval", ch, &m, &width, &side, &macs);
    if (pick) {
        rc = pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
        goto done;
    }
    const mn_config *c = &m.cfg;
    const char *sp = split ? split : c->data.val_split;
    char ann[1100];
    mn_det_annotations_path(ann, sizeof ann, c, sp);
    mn_dataset_options o;
    mn_config_dataset_options(c, sp, &o);
    if (mn_dataset_open(&d, &o) ||
        mn_det_evaluate_ranks(&m, d, ann, width, side, max_images, speaker ? &rep : NULL, results, comm, &s)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        goto done;
    }
    rc = MN_EXIT_OK;
    if (!speaker) goto done;
    int ih, iw;
    mn_det_model_input_size(&m, side, &ih, &iw);
    printf("{");
    for (int i = 0; i < MN_COCO_NSTATS; i++) printf("%s\"%s\": %.6f", i ? ", " : "", mn_coco_stat_name(i), s.stats[i]);
    printf(", \"width\": %.4f, \"short_side\": %d, \"max_side\": %d, \"input\": [%d, %d], \"macs\": %lld, \"images\": %d}\n",
           (double)width, side, c->det.max_side, ih, iw, (long long)macs, s.n_images);
    if (results) fprintf(stderr, "mutualnet eval: %lld detections written to %s\n", (long long)s.n_detections, results);
    rc = MN_EXIT_OK;
done:
    mn_dataset_close(d);
    mn_det_model_free(&m);
    return rc;
}

static int eval_cls(const char *ckpt, const mn_choice *ch, const char *split, int max_images, mn_comm *comm)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    bool speaker = mn_comm_rank(comm) == 0;
    mn_cls_model m;
    if (mn_cls_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int h, w, rc = MN_EXIT_FAIL;
    int64_t macs;
    mn_dataset *d = NULL;
    mn_cls_scores s;
    int pick = mn_choice_apply_cls("eval", ch, &m, &width, &h, &w, &macs);
    if (pick) {
        rc = pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
        goto done;
    }
    mn_dataset_options o;
    mn_config_dataset_options(&m.cfg, split ? split : m.cfg.data.val_split, &o);
    if (mn_dataset_open(&d, &o) || mn_cls_evaluate_ranks(&m, d, width, h, w, max_images, speaker ? &rep : NULL, comm, &s)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        goto done;
    }
    rc = MN_EXIT_OK;
    if (!speaker) goto done;
    printf("{\"top1\": %.6f, \"top5\": %.6f, \"width\": %.4f, \"size\": [%d, %d], \"macs\": %lld, \"images\": %d}\n", s.top1,
           s.top5, (double)width, h, w, (long long)macs, s.n);
    rc = MN_EXIT_OK;
done:
    mn_dataset_close(d);
    mn_cls_model_free(&m);
    return rc;
}

static int eval_task(const char *ckpt, const mn_choice *chp, const char *split, int max_images, const char *results,
                      enum mn_task_kind task, mn_comm *comm);

int mn_cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *split = NULL, *results = NULL;
    int max_images = 0;
    mn_choice ch = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int took = mn_choice_arg("eval", &ch, argc, argv, &i);
        if (took < 0) return MN_EXIT_USAGE;
        if (took) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("eval", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--split")) {
            if (!(split = mn_arg_value("eval", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--results")) {
            if (!(results = mn_arg_value("eval", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--max-images")) {
            if (!(v = mn_arg_value("eval", argc, argv, &i)) || !mn_arg_int("eval", a, v, 1, 1 << 30, &max_images))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet eval: unknown option %s (see mutualnet eval --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "mutualnet eval: --checkpoint FILE is required\n");
        return MN_EXIT_USAGE;
    }
    enum mn_task_kind task;
    if (mn_model_task(ckpt, &task)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    /* under mpirun / srun the images are shared out and the counts summed: the same numbers */
    mn_dist dist;
    if (mn_dist_open(&dist)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    int status = eval_task(ckpt, &ch, split, max_images, results, task, mn_dist_comm(&dist));
    mn_dist_close(&dist, status == MN_EXIT_OK ? 0 : MN_EINVAL);
    return status;
}

/* Any task, over the ranks of comm (NULL: one process). */
static int eval_task(const char *ckpt, const mn_choice *chp, const char *split, int max_images, const char *results,
                      enum mn_task_kind task, mn_comm *comm)
{
    if (task == MN_TASK_DETECTION) return eval_det(ckpt, chp, split, max_images, results, comm);
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    bool speaker = mn_comm_rank(comm) == 0;
    const mn_choice ch = *chp;
    if (results) {
        fprintf(stderr, "mutualnet eval: --results is for detection checkpoints; %s is a %s one\n", ckpt,
                task == MN_TASK_CLASSIFICATION ? "classification" : "segmentation");
        return MN_EXIT_USAGE;
    }
    if (task == MN_TASK_CLASSIFICATION) return eval_cls(ckpt, &ch, split, max_images, comm);
    mn_seg_model m;
    if (mn_seg_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int h, w, rc = MN_EXIT_FAIL;
    int64_t macs;
    mn_dataset *d = NULL;
    mn_seg_scores s;
    int pick = mn_choice_apply("eval", &ch, &m, &width, &h, &w, &macs);
    if (pick) {
        rc = pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
        goto done;
    }
    const mn_config *c = &m.cfg;
    mn_dataset_options o;
    mn_config_dataset_options(c, split ? split : c->data.val_split, &o);
    if (mn_dataset_open(&d, &o) || mn_seg_evaluate_ranks(&m, d, width, h, w, max_images, speaker ? &rep : NULL, comm, &s)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        goto done;
    }
    rc = MN_EXIT_OK;
    if (!speaker) goto done;
    printf("{\"mIoU\": %.6f, \"aAcc\": %.6f, \"mAcc\": %.6f, \"IoU\": [", s.miou, s.aacc, s.macc);
    for (int k = 0; k < s.num_classes; k++) {
        if (isnan(s.iou[k])) printf("%snull", k ? ", " : "");
        else printf("%s%.6f", k ? ", " : "", s.iou[k]);
    }
    printf("], \"width\": %.4f, \"size\": [%d, %d], \"macs\": %lld}\n", (double)width, h, w, (long long)macs);
    rc = MN_EXIT_OK;
done:
    mn_dataset_close(d);
    mn_seg_model_free(&m);
    return rc;
}
