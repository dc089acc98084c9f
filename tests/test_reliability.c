/* Hostile input and faults on the training side (issue 13): odd crop sizes, reused and locked
 * run folders, interrupted and resumed runs, changed configurations, non-finite weights, and
 * configurations whose keys contradict each other. Each case names what used to go wrong. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common.h"

#include "mn/checkpoint.h"
#include "mn/fileio.h"
#include "mn/seg_model.h"
#include "mn/synth.h"
#include "mn/train.h"

static char dir[64];

static void make_data(void)
{
    strcpy(dir, "/tmp/mn_rel_XXXXXX");
    cr_assert(mkdtemp(dir));
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 16;
    s.width = s.height = 64;
    s.seed = 5;
    s.png = true;
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
}

static void remove_data(void) { tc_remove_tree(dir); }

TestSuite(reliability, .init = make_data, .fini = remove_data, .timeout = 600);

/* A segmenter small enough that a run takes about a second. */
static void tiny_config(mn_config *c, const char *out)
{
    mn_config_default(c);
    snprintf(c->data.root, sizeof c->data.root, "%s/shapes", dir);
    snprintf(c->train.out_dir, sizeof c->train.out_dir, "%s/%s", dir, out);
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    c->data.scale_range[0] = 0.75f;
    c->data.scale_range[1] = 1.25f;
    c->data.workers = 1;
    c->mutual.num_subnets = 3;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
    c->optim.warmup_iters = 1;
    c->train.batch_size = 2;
    c->train.iterations = 4;
    c->train.log_every = 1;
    c->train.checkpoint_every = 2;
}

static void out_path(char *buf, size_t n, const mn_config *c, const char *file)
{
    snprintf(buf, n, "%s/%s", c->train.out_dir, file);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* The "iteration" a checkpoint was written at. */
static long long ckpt_iteration(const char *path)
{
    mn_safetensors st;
    cr_assert_eq(mn_st_read(path, &st), 0, "%s", mn_last_error());
    const char *it = mn_st_meta(&st, "iteration");
    cr_assert(it);
    long long v = atoll(it);
    mn_st_free(&st);
    return v;
}

/* How many metrics lines carry iteration `iter`: training lines (with "lr") and validation lines. */
static void count_lines(const mn_config *c, int iter, int *train, int *val)
{
    char path[700], line[8192];
    out_path(path, sizeof path, c, "metrics.jsonl");
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    *train = *val = 0;
    while (fgets(line, sizeof line, f)) {
        long long it;
        if (sscanf(line, "{\"iter\": %lld", &it) != 1 || it != iter) continue;
        if (strstr(line, "\"lr\": ")) ++*train;
        else ++*val;
    }
    fclose(f);
}

static int train(const mn_config *c, const mn_train_options *o)
{
    return mn_train(c, o);
}

/* Used to overflow the teacher buffer (sized crop/16 while the stride-4 map is ceil(h/4) x
 * ceil(w/4)) and, with a scale rounding above the crop (60 x 0.8 -> 64), the label buffer:
 * heap corruption in release builds, an ASan report here. */
Test(reliability, crops_that_are_no_multiple_of_4_or_32)
{
    static const int crops[][2] = {{33, 63}, {60, 60}, {65, 97}};
    for (int i = 0; i < 3; i++) {
        mn_config c;
        char name[32];
        snprintf(name, sizeof name, "crop%d", i);
        tiny_config(&c, name);
        c.data.crop[0] = crops[i][0];
        c.data.crop[1] = crops[i][1];
        c.mutual.scales[1] = 0.8f; /* 60 x 0.8 = 48 rounds to 64 > 60 */
        c.train.iterations = 2;
        mn_train_options o = {0};
        cr_assert_eq(train(&c, &o), 0, "crop %dx%d: %s", crops[i][0], crops[i][1], mn_last_error());
        double loss[4] = {0};
        cr_assert_eq(tc_metrics_losses(c.train.out_dir, loss, 4), 2);
        cr_assert(isfinite(loss[1]) && loss[1] > 0.1 && loss[1] < 5, "crop %dx%d: loss %g", crops[i][0], crops[i][1],
                  loss[1]);
    }
}

/* Used to truncate metrics.jsonl and replace last.safetensors of the run already there. */
Test(reliability, a_fresh_run_refuses_a_used_folder)
{
    mn_config c;
    tiny_config(&c, "used");
    c.train.iterations = 2;
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    char metrics[700], last[700];
    out_path(metrics, sizeof metrics, &c, "metrics.jsonl");
    out_path(last, sizeof last, &c, "last.safetensors");
    char *before = NULL;
    size_t n_before = 0;
    cr_assert_eq(mn_read_file(metrics, 1 << 20, "metrics", &before, &n_before), 0);
    c.train.seed = 99;
    cr_assert_eq(train(&c, &o), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "already holds a training run (last.safetensors); continue it with --resume"),
              "%s", mn_last_error());
    char *after = NULL;
    size_t n_after = 0;
    cr_assert_eq(mn_read_file(metrics, 1 << 20, "metrics", &after, &n_after), 0);
    cr_assert_eq(n_after, n_before, "the refused run changed metrics.jsonl");
    cr_assert_eq(memcmp(before, after, n_before), 0);
    cr_assert_eq(ckpt_iteration(last), 2);
    free(before);
    free(after);
    /* asked for, it starts over */
    o.overwrite = true;
    c.train.iterations = 1;
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    cr_assert_eq(ckpt_iteration(last), 1);
    int tr, va;
    count_lines(&c, 2, &tr, &va);
    cr_assert_eq(tr + va, 0, "the old run's lines survived --overwrite");
}

Test(reliability, a_second_run_in_a_locked_folder_is_refused)
{
    mn_config c;
    tiny_config(&c, "locked");
    cr_assert_eq(mn_mkdirs(c.train.out_dir), 0);
    char lock[700];
    out_path(lock, sizeof lock, &c, "train.lock");
    int fd = open(lock, O_RDWR | O_CREAT, 0666);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "4242\n", 5), 5);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0); /* another open file: conflicts even within one process */
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), MN_EBUSY);
    cr_assert(strstr(mn_last_error(), "is in use by another training run (pid 4242"), "%s", mn_last_error());
    close(fd);
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
}

/* Used to continue silently with another seed, batch size, ... and replace config.json. */
Test(reliability, resume_refuses_a_changed_run_unless_allowed)
{
    mn_config c;
    tiny_config(&c, "changed");
    mn_train_options o = {.stop_at = 2};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    char last[700], config[700];
    out_path(last, sizeof last, &c, "last.safetensors");
    out_path(config, sizeof config, &c, "config.json");
    mn_config d = c;
    d.train.seed = 7;
    d.train.batch_size = 4;
    d.data.workers = 2;     /* changes nothing the run computes: not listed */
    d.train.log_every = 2;
    o = (mn_train_options){.resume = last};
    cr_assert_eq(train(&d, &o), MN_EINVAL);
    const char *e = mn_last_error();
    cr_assert(strstr(e, "differs from the checkpoint's in 2 key(s) that change the run: train.batch_size 2 -> 4, "
                        "train.seed 1 -> 7; resume with the run's own config.json, or pass --allow-config-change"),
              "%s", e);
    mn_config stored;
    mn_config_default(&stored);
    cr_assert_eq(mn_config_load(config, &stored), 0, "%s", mn_last_error());
    cr_assert_eq(stored.train.seed, 1, "the refused resume replaced config.json");
    /* the neutral keys alone pass */
    d = c;
    d.data.workers = 2;
    d.train.log_every = 2;
    cr_assert_eq(train(&d, &o), 0, "%s", mn_last_error());
    /* and with the override, a changed run continues */
    mn_config f = c;
    f.train.iterations = 6;
    o.allow_changes = true;
    cr_assert_eq(train(&f, &o), 0, "%s", mn_last_error());
    cr_assert_eq(ckpt_iteration(last), 6);
}

/* Used to repeat the iterations logged after the last checkpoint, and to skip the final
 * evaluation when resuming from the final checkpoint. */
Test(reliability, resume_cuts_the_log_back_and_always_evaluates_at_the_end)
{
    mn_config c;
    tiny_config(&c, "cut");
    c.train.iterations = 5;
    mn_train_options o = {.stop_at = 3}; /* checkpoint at 2, iterations 1..3 logged: a kill after 3 */
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    char last[700], metrics[700];
    out_path(last, sizeof last, &c, "last.safetensors");
    out_path(metrics, sizeof metrics, &c, "metrics.jsonl");
    cr_assert_eq(ckpt_iteration(last), 2);
    /* half a line, as a kill in the middle of a write leaves it */
    FILE *f = fopen(metrics, "a");
    fputs("{\"iter\": 4, \"lr\": 0.0", f);
    fclose(f);
    o = (mn_train_options){.resume = last};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    for (int it = 1; it <= 5; it++) {
        int tr, va;
        count_lines(&c, it, &tr, &va);
        cr_assert_eq(tr, 1, "iteration %d logged %d times", it, tr);
        cr_assert_eq(va, it == 5, "iteration %d: %d validation lines", it, va);
    }
    /* resumed from the final checkpoint: nothing to train, the evaluation runs once more */
    cr_assert_eq(ckpt_iteration(last), 5);
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    int tr, va;
    count_lines(&c, 5, &tr, &va);
    cr_assert_eq(tr, 1);
    cr_assert_eq(va, 1, "the final evaluation should be logged once, not %d times", va);
}

/* SIGINT/SIGTERM used to end a run with nothing saved since the last checkpoint. */
Test(reliability, a_stop_request_checkpoints_the_iteration_it_finished)
{
    mn_config c;
    tiny_config(&c, "stop");
    c.train.checkpoint_every = 100;
    volatile sig_atomic_t flag = 1; /* as if the signal came during the first iteration */
    mn_train_options o = {.stop = &flag};
    cr_assert_eq(train(&c, &o), MN_ECANCELED);
    cr_assert(strstr(mn_last_error(), "interrupted after iteration 1; checkpoint"), "%s", mn_last_error());
    char last[700];
    out_path(last, sizeof last, &c, "last.safetensors");
    cr_assert_eq(ckpt_iteration(last), 1);
    o = (mn_train_options){.resume = last};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    cr_assert_eq(ckpt_iteration(last), 4);
}

/* Only last.safetensors was kept; a write killed half-way left its temp file forever. */
Test(reliability, previous_checkpoint_kept_and_stale_temps_removed)
{
    mn_config c;
    tiny_config(&c, "keep");
    cr_assert_eq(mn_mkdirs(c.train.out_dir), 0);
    char stale[700], live[700], prev[700], last[700];
    out_path(stale, sizeof stale, &c, "last.safetensors.tmp.2147483646"); /* above any pid_max: no such process */
    snprintf(live, sizeof live, "%s/notes.txt.tmp.%ld", c.train.out_dir, (long)getpid());
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(i ? live : stale, "w");
        cr_assert(f);
        fputs("partial", f);
        fclose(f);
    }
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    cr_assert(!exists(stale), "%s was left", stale);
    cr_assert(exists(live), "the temp file of a live process was removed");
    out_path(prev, sizeof prev, &c, "previous.safetensors");
    out_path(last, sizeof last, &c, "last.safetensors");
    cr_assert_eq(ckpt_iteration(last), 4);
    cr_assert_eq(ckpt_iteration(prev), 2);
}

/* NaN and Inf used to be saved, loaded and run without a word. */
Test(reliability, non_finite_weights_are_never_saved_nor_loaded)
{
    mn_config c;
    tiny_config(&c, "finite");
    c.train.iterations = 2;
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    char last[700], bad[700];
    out_path(last, sizeof last, &c, "last.safetensors");
    out_path(bad, sizeof bad, &c, "bad.safetensors");
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_open(&m, last), 0, "%s", mn_last_error());
    /* saving refuses and leaves no file */
    mn_param *p = m.ps.items[3];
    p->var.val.data[5] = NAN;
    cr_assert_eq(mn_seg_model_save(&m, bad, NULL, 2), MN_ENUMERIC);
    char want[256];
    snprintf(want, sizeof want, "tensor %s holds NaN at element 5 (1 of", p->name);
    cr_assert(strstr(mn_last_error(), want), "%s", mn_last_error());
    cr_assert(!exists(bad));
    /* a file that holds one (written past the check) is refused on loading, the tensor named */
    p->var.val.data[5] = INFINITY;
    mn_st_item *items = calloc((size_t)m.ps.n, sizeof *items);
    for (int i = 0; i < m.ps.n; i++) {
        const mn_param *q = m.ps.items[i];
        items[i] = (mn_st_item){q->name, MN_ST_F32, q->var.val.ndim, q->var.val.shape, q->var.val.data};
    }
    cr_assert_eq(mn_st_write(bad, items, m.ps.n, NULL, NULL, 0), 0, "%s", mn_last_error());
    free(items);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(bad, &st), 0);
    p->var.val.data[5] = 0.0f;
    cr_assert_eq(mn_checkpoint_apply(&st, &m.ps, NULL, 0), MN_ENUMERIC);
    cr_assert(strstr(mn_last_error(), "holds Inf at element 5"), "%s", mn_last_error());
    mn_st_free(&st);
    mn_seg_model_free(&m);
}

Test(reliability, seeds_keep_all_64_bits)
{
    mn_config c;
    mn_config_default(&c);
    cr_assert_eq(mn_config_parse("{\"train\": {\"seed\": 9007199254740993}}", "x.json", &c), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "is 2^53 or more, where JSON numbers lose digits; write it as a string"), "%s",
              mn_last_error());
    cr_assert_eq(mn_config_parse("{\"train\": {\"seed\": \"18446744073709551615\"}}", "x.json", &c), 0, "%s",
                 mn_last_error());
    cr_assert_eq(c.train.seed, 18446744073709551615ull);
    cr_assert_eq(mn_config_set(&c, "train.seed", "9007199254740993"), 0, "%s", mn_last_error());
    cr_assert_eq(c.train.seed, 9007199254740993ull);
    cr_assert_eq(mn_config_set(&c, "train.seed", "18446744073709551616"), MN_EINVAL);
    cr_assert_eq(mn_config_set(&c, "train.seed", "-1"), MN_EINVAL);
    /* the stored configuration replays the same run: no rounding on the way through config.json */
    cr_assert_eq(mn_config_set(&c, "train.seed", "9007199254740993"), 0);
    char *js = mn_config_to_json(&c);
    mn_config d;
    mn_config_default(&d);
    cr_assert_eq(mn_config_parse(js, "round trip", &d), 0, "%s", mn_last_error());
    cr_assert_eq(d.train.seed, 9007199254740993ull);
    free(js);
    c.train.seed = 12345;
    js = mn_config_to_json(&c);
    cr_assert(strstr(js, "\"seed\":\t12345"), "%s", js); /* small seeds stay numbers */
    free(js);
}

Test(reliability, config_keys_are_checked_together_after_every_set)
{
    char path[128];
    snprintf(path, sizeof path, "%s/seg.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"task\": \"segmentation\", \"data\": {\"kind\": \"folder\"}}", f);
    fclose(f);
    mn_config c;
    mn_config_default(&c);
    /* task=detection alone contradicts data.kind folder; the second --set makes it whole */
    const char *sets[] = {"task=detection", "data.kind=coco"};
    cr_assert_eq(mn_config_load_with(path, sets, 2, &c), 0, "%s", mn_last_error());
    cr_assert_eq(c.task, MN_TASK_DETECTION);
    mn_config_default(&c);
    cr_assert_eq(mn_config_load_with(path, sets, 1, &c), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "with --set: task \"detection\" cannot train on data.kind \"folder\" (it reads coco)"),
              "%s", mn_last_error());
    /* a segmenter on COCO data used to train the whole run at loss 0 */
    mn_config_default(&c);
    strcpy(c.data.kind, "coco");
    cr_assert_eq(mn_config_check(&c, "x.json"), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "task \"segmentation\" cannot train on data.kind \"coco\""), "%s", mn_last_error());
    /* batch size 1 used to fail inside BatchNorm with an internal message */
    mn_config_default(&c);
    c.train.batch_size = 1;
    cr_assert_eq(mn_config_check(&c, "x.json"), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "train.batch_size 1 is too small for segmentation"), "%s", mn_last_error());
    mn_config_default(&c);
    c.task = MN_TASK_DETECTION;
    strcpy(c.data.kind, "coco");
    c.train.batch_size = 1;
    cr_assert_eq(mn_config_check(&c, "x.json"), 0, "%s", mn_last_error()); /* 800 px: plenty of cells */
    c.det.short_side = 64;
    cr_assert_eq(mn_config_check(&c, "x.json"), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "train.batch_size 1 at the smallest input, 32x32, leaves one value per channel"),
              "%s", mn_last_error());
    /* a key given twice used to keep the first value silently */
    mn_config_default(&c);
    cr_assert_eq(mn_config_parse("{\"optim\": {\"lr\": 0.1, \"lr\": 0.01}}", "x.json", &c), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "x.json: duplicate key \"lr\""), "%s", mn_last_error());
}

static void copy_tree(const char *from, const char *to)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Label maps that are all ignore used to train the whole run at loss 0 and fail at the end. */
Test(reliability, splits_with_nothing_to_learn_are_refused_before_training)
{
    char src[128], root[128], cmd[600];
    snprintf(src, sizeof src, "%s/shapes", dir);
    snprintf(root, sizeof root, "%s/ignored", dir);
    copy_tree(src, root);
    /* every training label becomes 255 (ignore) */
    snprintf(cmd, sizeof cmd, "ls %s/labels/train", root);
    FILE *ls = popen(cmd, "r");
    char name[256];
    int n = 0;
    while (fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        char path[700];
        snprintf(path, sizeof path, "%s/labels/train/%s", root, name);
        mn_image img;
        cr_assert_eq(mn_image_load_labels(path, &img), 0, "%s", mn_last_error());
        memset(img.data, 255, (size_t)img.w * img.h);
        cr_assert_eq(mn_image_save(path, &img, 0), 0, "%s", mn_last_error());
        mn_image_free(&img);
        n++;
    }
    pclose(ls);
    cr_assert_gt(n, 4);
    mn_config c;
    tiny_config(&c, "ignored_run");
    snprintf(c.data.root, sizeof c.data.root, "%s", root);
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), MN_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "the train split's label maps hold no pixel of the 6 classes (%d of %d images read", n, n);
    cr_assert(strstr(mn_last_error(), want), "%s", mn_last_error());
    char metrics[700];
    out_path(metrics, sizeof metrics, &c, "metrics.jsonl");
    cr_assert(!exists(metrics), "nothing should have been trained");
}

/* A full disk used to leave config.json and metrics.jsonl as empty files without a word.
 * RLIMIT_FSIZE makes every write past a few bytes fail (EFBIG) as a full disk would. */
Test(reliability, a_full_disk_stops_the_run_and_keeps_the_files)
{
    mn_config c;
    tiny_config(&c, "full");
    c.train.iterations = 2;
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    char config[700], last[700];
    out_path(config, sizeof config, &c, "config.json");
    out_path(last, sizeof last, &c, "last.safetensors");
    char *before = NULL;
    size_t n_before = 0;
    cr_assert_eq(mn_read_file(config, 1 << 20, "config", &before, &n_before), 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    lim.rlim_cur = 64; /* the soft limit only, so that it can be raised again */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    mn_config d = c;
    d.train.iterations = 4;
    o = (mn_train_options){.resume = last, .allow_changes = true};
    cr_assert_neq(train(&d, &o), 0);
    cr_assert(strstr(mn_last_error(), "config.json: write failed: File too large (the previous file, if any, is unchanged)"),
              "%s", mn_last_error());
    char *after = NULL;
    size_t n_after = 0;
    cr_assert_eq(mn_read_file(config, 1 << 20, "config", &after, &n_after), 0);
    cr_assert_eq(n_after, n_before);
    cr_assert_eq(memcmp(before, after, n_before), 0);
    /* the checkpoint (15 MB) cannot be written either: the run stops at its first one, the last one stays */
    lim.rlim_cur = 1 << 20;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cr_assert_neq(train(&d, &o), 0);
    cr_assert(strstr(mn_last_error(), "stopped at iteration 4: "), "%s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "the last good checkpoint is"), "%s", mn_last_error());
    cr_assert_eq(ckpt_iteration(last), 2);
    free(before);
    free(after);
}

/* A COCO split whose boxes are all unusable used to train without a warning. */
Test(reliability, a_detection_split_without_usable_boxes_is_refused)
{
    char src[128], root[128], ann[300];
    snprintf(src, sizeof src, "%s/shapes", dir);
    snprintf(root, sizeof root, "%s/noboxes", dir);
    copy_tree(src, root);
    snprintf(ann, sizeof ann, "%s/annotations/instances_train.json", root);
    char *text = NULL;
    size_t n = 0;
    cr_assert_eq(mn_read_file(ann, 1 << 26, "annotations", &text, &n), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    int boxes = 0;
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "annotations"))
    {
        cJSON *bbox = cJSON_GetObjectItem(a, "bbox");
        cJSON_ReplaceItemInArray(bbox, 2, cJSON_CreateNumber(0)); /* zero width */
        boxes++;
    }
    cr_assert_gt(boxes, 4);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    cr_assert_eq(mn_write_file_atomic(ann, out, strlen(out)), 0);
    free(out);
    mn_config c;
    tiny_config(&c, "noboxes_run");
    snprintf(c.data.root, sizeof c.data.root, "%s", root);
    c.task = MN_TASK_DETECTION;
    strcpy(c.data.kind, "coco");
    c.det.short_side = c.det.max_side = 64;
    c.det.fpn_channels = 16;
    c.det.box_hidden = 32;
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), MN_EINVAL);
    char want[200];
    snprintf(want, sizeof want, "the train split has no usable box (%d annotations: 0 crowd, %d with no area inside the image",
             boxes, boxes);
    cr_assert(strstr(mn_last_error(), want), "%s", mn_last_error());
}

/* A missing data.root used to be reported as a missing class list inside it. */
Test(reliability, a_missing_data_root_is_named_as_such)
{
    mn_config c;
    tiny_config(&c, "noroot");
    snprintf(c.data.root, sizeof c.data.root, "%s/no_such_folder", dir);
    mn_train_options o = {0};
    cr_assert_eq(train(&c, &o), MN_EIO);
    char want[200];
    snprintf(want, sizeof want, "%s/no_such_folder: the data set folder (data.root) does not exist", dir);
    cr_assert_str_eq(mn_last_error(), want);
}

/* An edited class list used to resume silently, renaming what the weights had learnt. */
Test(reliability, resume_refuses_a_changed_class_list)
{
    char src[128], root[128], list[200];
    snprintf(src, sizeof src, "%s/shapes", dir);
    snprintf(root, sizeof root, "%s/renamed", dir);
    copy_tree(src, root);
    mn_config c;
    tiny_config(&c, "renamed_run");
    snprintf(c.data.root, sizeof c.data.root, "%s", root);
    mn_train_options o = {.stop_at = 2};
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
    /* same count, two names swapped */
    snprintf(list, sizeof list, "%s/classes.txt", root);
    const char *swapped = "background\ncircle\nsquare\nstar\ntriangle\nring\n";
    cr_assert_eq(mn_write_file_atomic(list, swapped, strlen(swapped)), 0);
    char last[700];
    out_path(last, sizeof last, &c, "last.safetensors");
    o = (mn_train_options){.resume = last};
    cr_assert_eq(train(&c, &o), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "the training split's classes differ from the checkpoint's (class 3 is \"triangle\" in "
                                      "the checkpoint, \"star\" in the data)"),
              "%s", mn_last_error());
    o.allow_changes = true;
    cr_assert_eq(train(&c, &o), 0, "%s", mn_last_error());
}

/* A file that turns out unreadable in the middle of a run: named, with where the run stands. */
Test(reliability, an_unreadable_image_stops_the_run_with_its_name)
{
    char src[128], root[128], cmd[700];
    snprintf(src, sizeof src, "%s/shapes", dir);
    snprintf(root, sizeof root, "%s/cut", dir);
    copy_tree(src, root);
    snprintf(cmd, sizeof cmd, "f=$(ls %s/images/train/*.png | sed -n 3p); head -c 300 \"$f\" > %s/x && mv %s/x \"$f\"",
             root, dir, dir);
    cr_assert_eq(system(cmd), 0);
    mn_config c;
    tiny_config(&c, "cut_run");
    snprintf(c.data.root, sizeof c.data.root, "%s", root);
    c.train.iterations = 8; /* one epoch: every image is read */
    mn_train_options o = {0};
    cr_assert_neq(train(&c, &o), 0);
    const char *e = mn_last_error();
    cr_assert(strstr(e, "stopped at iteration ") && strstr(e, "/cut/images/train/") && strstr(e, ": truncated PNG"), "%s", e);
}
