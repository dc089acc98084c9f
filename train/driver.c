/* The scaffolding the segmentation and detection paths share (train/driver.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mn/checkpoint.h"
#include "mn/fileio.h"
#include "mn/ops.h"
#include "train/driver.h"

/* ---- checkpoints ---- */

int drv_ckpt_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                  const char *task, const char *const *keys /* (n_keys) */, const char *const *vals /* (n_keys) */,
                  int n_keys, const mn_sgd *opt, int64_t iteration)
{
    int n_extra = 0, rc = 0;
    mn_st_item *extra = calloc((size_t)(ps->n + table->n + 1), sizeof *extra);
    char **names = calloc((size_t)(ps->n + table->n + 1), sizeof *names);
    int64_t *shapes = calloc((size_t)(table->n + 1), sizeof *shapes);
    char *config = mn_config_to_json(cfg), *table_s = mn_query_to_json(table);
    const char **meta_keys = calloc((size_t)(n_keys + 6), sizeof *meta_keys);
    const char **meta_vals = calloc((size_t)(n_keys + 6), sizeof *meta_vals);
    if (!extra || !names || !shapes || !config || !table_s || !meta_keys || !meta_vals) {
        rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (opt)
        for (int i = 0; i < ps->n; i++) {
            mn_tensor b = mn_sgd_momentum(opt, i);
            if (!b.data) continue;
            names[n_extra] = malloc(strlen(ps->items[i]->name) + 8);
            if (!names[n_extra]) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            sprintf(names[n_extra], "optim.%s", ps->items[i]->name);
            extra[n_extra] = (mn_st_item){names[n_extra], MN_ST_F32, b.ndim, ps->items[i]->var.val.shape, b.data};
            n_extra++;
        }
    for (int i = 0; i < table->n; i++) {
        if (!(names[n_extra] = malloc(32))) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        snprintf(names[n_extra], 32, "bn_bank.%d", i);
        shapes[i] = table->n_stats;
        extra[n_extra] = (mn_st_item){names[n_extra], MN_ST_F32, 1, &shapes[i], table->e[i].bn_stats};
        n_extra++;
    }
    char iter_s[32], steps_s[32];
    snprintf(iter_s, sizeof iter_s, "%lld", (long long)iteration);
    snprintf(steps_s, sizeof steps_s, "%lld", (long long)(opt ? mn_sgd_steps(opt) : 0));
    /* the order of the keys is the order in the file's header */
    int n_meta = 0;
    meta_keys[n_meta] = "format", meta_vals[n_meta++] = "mutualnet-1";
    meta_keys[n_meta] = "task", meta_vals[n_meta++] = task;
    meta_keys[n_meta] = "config", meta_vals[n_meta++] = config;
    for (int i = 0; i < n_keys; i++) meta_keys[n_meta] = keys[i], meta_vals[n_meta++] = vals[i];
    meta_keys[n_meta] = "iteration", meta_vals[n_meta++] = iter_s;
    meta_keys[n_meta] = "optim_steps", meta_vals[n_meta++] = steps_s;
    meta_keys[n_meta] = "query_table", meta_vals[n_meta++] = table_s;
    rc = mn_checkpoint_save(path, ps, extra, n_extra, meta_keys, meta_vals, n_meta);
done:
    for (int i = 0; names && i < n_extra; i++) free(names[i]);
    free(names);
    free(extra);
    free(shapes);
    free(config);
    free(table_s);
    free(meta_keys);
    free(meta_vals);
    return rc;
}

const char *drv_ckpt_meta(const mn_safetensors *st, const char *key)
{
    const char *v = mn_st_meta(st, key);
    if (!v) mn_error(MN_EFORMAT, "%s: metadata \"%s\" is missing (not a mutualnet checkpoint?)", st->path, key);
    return v;
}

int drv_named_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                   const char *task, const char *names /* (n, stride) */, size_t stride, int n, const mn_sgd *opt,
                   int64_t iteration)
{
    cJSON *list = cJSON_CreateArray();
    for (int k = 0; list && k < n; k++) cJSON_AddItemToArray(list, cJSON_CreateString(names + (size_t)k * stride));
    char *list_s = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    if (!list_s) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *keys[] = {"classes", "num_classes"};
    const char *vals[] = {list_s, count};
    int rc = drv_ckpt_save(path, ps, table, cfg, task, keys, vals, 2, opt, iteration);
    free(list_s);
    return rc;
}

int drv_named_open(const char *path, const char *task, int lo, int hi, size_t stride, mn_safetensors *st, mn_config *cfg,
                   char **names /* (*n, stride) */, int *n, const char **table_json)
{
    *names = NULL;
    int rc = mn_st_read(path, st);
    if (rc) return rc;
    const char *kind = drv_ckpt_meta(st, "task"), *config = kind ? drv_ckpt_meta(st, "config") : NULL,
               *classes = config ? drv_ckpt_meta(st, "classes") : NULL;
    *table_json = classes ? drv_ckpt_meta(st, "query_table") : NULL;
    if (!*table_json) rc = MN_EFORMAT;
    else if (strcmp(kind, task)) rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a %s one", path, kind, task);
    if (!rc) {
        mn_config_default(cfg);
        rc = mn_config_parse(config, path, cfg);
    }
    cJSON *list = rc ? NULL : cJSON_Parse(classes);
    *n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    if (!rc && (*n < lo || *n > hi))
        rc = mn_error(MN_EFORMAT, "%s: metadata \"classes\" is not a list of %d to %d names", path, lo, hi);
    if (!rc && !(*names = calloc((size_t)*n, stride))) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    int k = 0;
    for (cJSON *c = rc ? NULL : list->child; c; c = c->next, k++)
        snprintf(*names + (size_t)k * stride, stride, "%s", cJSON_IsString(c) ? c->valuestring : "?");
    cJSON_Delete(list);
    if (rc) {
        free(*names);
        *names = NULL;
        mn_st_free(st);
    }
    return rc;
}

/* Tensors of a checkpoint that are not the model's parameters. */
static const char *const extra_prefixes[] = {"optim.", "bn_bank."};

int drv_ckpt_load(const mn_safetensors *st, mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb,
                  float *train_stats /* (table->n_stats) */, mn_query_table *table, const char *table_json)
{
    int rc = mn_checkpoint_apply(st, ps, extra_prefixes, 2);
    if (rc) return rc;
    mn_query_save_stats(train_stats, bns, nb);
    int64_t n_stats = table->n_stats;
    mn_query_free(table);
    rc = mn_query_from_json(table, table_json, n_stats);
    for (int i = 0; !rc && i < table->n; i++) {
        char name[32];
        mn_tensor t;
        snprintf(name, sizeof name, "bn_bank.%d", i);
        int64_t shape[1] = {n_stats};
        rc = mn_st_get_f32(st, name, 1, shape, &t);
        if (!rc) rc = mn_check_finite(t.data, n_stats, st->path, name);
        if (!rc && !(table->e[i].bn_stats = malloc(sizeof(float) * (size_t)n_stats)))
            rc = mn_error(MN_ENOMEM, "%s: out of memory", st->path);
        if (!rc) memcpy(table->e[i].bn_stats, t.data, sizeof(float) * (size_t)n_stats);
    }
    return rc;
}

int drv_ckpt_resume(const char *path, const char *task, mn_param_set *ps, mn_sgd *opt, int64_t *iteration)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *kind = task ? drv_ckpt_meta(&st, "task") : NULL;
    if (kind && strcmp(kind, task)) rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a %s one", path, kind, task);
    else if (task && !kind) rc = MN_EFORMAT;
    if (!rc) rc = mn_checkpoint_apply(&st, ps, extra_prefixes, 2);
    const char *it = rc ? NULL : drv_ckpt_meta(&st, "iteration"), *steps = it ? drv_ckpt_meta(&st, "optim_steps") : NULL;
    if (!rc && (!it || !steps)) rc = MN_EFORMAT;
    for (int i = 0; !rc && i < ps->n; i++) {
        mn_tensor b = mn_sgd_momentum(opt, i);
        if (!b.data) continue;
        char name[128];
        mn_tensor t;
        snprintf(name, sizeof name, "optim.%s", ps->items[i]->name);
        rc = mn_st_get_f32(&st, name, b.ndim, b.shape, &t);
        if (!rc) rc = mn_check_finite(t.data, mn_tensor_numel(&t), path, name);
        if (!rc) memcpy(b.data, t.data, sizeof(float) * (size_t)mn_tensor_numel(&t));
    }
    if (!rc) {
        *iteration = atoll(it);
        rc = mn_sgd_set_steps(opt, atoll(steps));
    }
    mn_st_free(&st);
    return rc;
}

int drv_backbone_init(mn_param_set *ps, const char *path, const char *backbone)
{
    int copied = 0;
    int rc = mn_checkpoint_apply_prefixed(path, ps, "backbone.", &copied);
    if (!rc) mn_info("%s: initialised %d %s backbone tensors", path, copied, backbone);
    return rc;
}

int drv_stats_alloc(mn_query_table *table, mn_slim_bn *const *bns /* (nb) */, int nb, float **train_stats)
{
    table->n_stats = mn_query_stats_size(bns, nb);
    *train_stats = malloc(sizeof(float) * (size_t)(table->n_stats + 1)); /* + 1: never malloc(0) */
    return *train_stats ? 0 : mn_error(MN_ENOMEM, "out of memory");
}

/* ---- the training loop ---- */

int drv_open_splits(drv_run *run)
{
    const mn_config *c = run->c;
    mn_dataset_options o;
    mn_config_dataset_options(c, c->data.train_split, &o);
    int rc = mn_dataset_open(&run->train, &o);
    if (rc) return rc;
    if (mn_dataset_size(run->train) < c->train.batch_size)
        return mn_error(MN_EINVAL, "%s: the %s split has %d images, fewer than batch_size %d", c->data.root,
                        c->data.train_split, mn_dataset_size(run->train), c->train.batch_size);
    o.split = c->data.val_split;
    rc = mn_dataset_open(&run->val, &o);
    if (!rc && mn_dataset_size(run->val) == 0)
        rc = mn_error(MN_EINVAL, "%s: the %s split (data.val_split) has no images; the evaluations need some",
                      c->data.root, c->data.val_split);
    return rc;
}

mn_loader_options drv_loader_options(const mn_config *c)
{
    return (mn_loader_options){.batch_size = c->train.batch_size, .shuffle = true, .drop_last = true,
                               .workers = c->data.workers, .prefetch = 2, .seed = c->train.seed};
}

mn_seg_aug drv_seg_aug(const mn_config *c, bool train)
{
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, c->data.crop[0], c->data.crop[1], train);
    aug.scale_min = c->data.scale_range[0];
    aug.scale_max = c->data.scale_range[1];
    aug.hflip = train && c->data.hflip;
    return aug;
}

int drv_open_image_loader(drv_run *run)
{
    mn_seg_aug aug = drv_seg_aug(run->c, true);
    mn_loader_options lo = drv_loader_options(run->c);
    return mn_loader_open(&run->loader, run->train, &aug, &lo);
}

int drv_next_image_batch(mn_loader *ld, const void **batch)
{
    const mn_seg_batch *b = NULL;
    int rc = mn_loader_next(ld, &b);
    *batch = b;
    return rc;
}

void drv_metrics_subnet_plain(drv_run *run, FILE *f, const mn_subnet *sn, int k, double loss)
{
    fprintf(f, "{\"width\": %.4f, \"scale\": %.2f, \"loss\": %.7f}", (double)sn->width, (double)sn->scale, loss);
}

/* ---- the run folder ---- */

/* Takes the run folder's lock (<out_dir>/train.lock, flock: released by the kernel when the
 * process ends, however it ends) so that two runs never write into one folder. */
static int lock_folder(drv_run *run)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/train.lock", run->c->train.out_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return mn_error(MN_EIO, "%s: cannot create the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = read(fd, pid, sizeof pid - 1);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return mn_error(MN_EBUSY,
                        "%s is in use by another training run (pid %s, lock %s); wait for it to end or choose "
                        "another train.out_dir",
                        run->c->train.out_dir, pid[0] ? pid : "?", path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n) { /* the pid is for people; the flock is the lock */
    }
    run->lock_fd = fd;
    return 0;
}

/* A process id that still runs (or that we may not signal, which also means it exists). */
static bool pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Removes what killed writers left in the run folder: "<file>.tmp.<pid>" of processes that are
 * gone (a checkpoint-sized file each) and an unfinished "last.safetensors.next". */
static void remove_stale_temps(drv_run *run)
{
    const char *dir = run->c->train.out_dir;
    DIR *d = opendir(dir);
    if (!d) return;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, ".tmp.");
        char *end = NULL;
        long pid = t ? strtol(t + 5, &end, 10) : 0;
        bool stale = (t && end && end != t + 5 && !*end && !pid_alive(pid)) || !strcmp(e->d_name, "last.safetensors.next");
        if (!stale) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) removed++;
    }
    closedir(d);
    if (removed) mn_info("%s: removed %d temporary file(s) left by an interrupted write", dir, removed);
}

static bool nonempty_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

/* A fresh run never replaces another run's files unless asked to. */
static int check_fresh_folder(drv_run *run, bool overwrite)
{
    const char *dir = run->c->train.out_dir;
    char metrics[1100];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    bool used = nonempty_file(run->path_last) || nonempty_file(metrics);
    if (!used) return 0;
    if (!overwrite)
        return mn_error(MN_EINVAL,
                        "%s already holds a training run (%s); continue it with --resume %s, start over with "
                        "--overwrite, or choose another train.out_dir",
                        dir, nonempty_file(run->path_last) ? "last.safetensors" : "metrics.jsonl", run->path_last);
    unlink(run->path_prev); /* --overwrite: the old run's checkpoints must not pass for this one's */
    unlink(run->path_last);
    mn_warn("%s: --overwrite: starting a new run over the one that was there", dir);
    return 0;
}

/* Refuses to resume under a configuration that would compute another run than the checkpoint's,
 * listing the keys; allow_changes turns that into a warning. */
static int check_resume_config(drv_run *run, const char *resume, bool allow_changes, char **classes)
{
    mn_safetensors st;
    int rc = mn_st_read(resume, &st);
    if (rc) return rc;
    const char *stored = drv_ckpt_meta(&st, "config"), *names = mn_st_meta(&st, "classes");
    mn_config old;
    mn_config_default(&old);
    rc = stored ? mn_config_parse(stored, resume, &old) : MN_EFORMAT;
    if (!rc && names && !(*classes = strdup(names))) rc = mn_error(MN_ENOMEM, "out of memory");
    mn_st_free(&st);
    if (rc) return rc;
    char diff[2048];
    int n = mn_config_diff(&old, run->c, true, diff, sizeof diff);
    if (!n) return 0;
    if (!allow_changes)
        return mn_error(MN_EINVAL,
                        "%s: the configuration differs from the checkpoint's in %d key(s) that change the run: %s; "
                        "resume with the run's own config.json, or pass --allow-config-change to continue with the "
                        "new values",
                        resume, n, diff);
    mn_warn("%s: continuing with %d changed key(s): %s", resume, n, diff);
    return 0;
}

/* The class list is data, not configuration: the same data.classes file may have been edited, or
 * the data set replaced, between the checkpoint and the resume. The checkpoint's names (stored
 * JSON list, at most 31 bytes each; a detector's index 0 is its "background") must be the
 * training split's. */
static int check_resume_classes(drv_run *run, const char *resume, const char *stored, bool allow_changes)
{
    cJSON *list = stored ? cJSON_Parse(stored) : NULL;
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return 0; /* nothing to compare with: the weights' shapes still are */
    }
    int n = cJSON_GetArraySize(list), K = mn_dataset_num_classes(run->train), k = 0;
    char diff[512] = "";
    if (n != K) snprintf(diff, sizeof diff, "%d classes in the checkpoint, %d in the data", n, K);
    bool detection = run->c->task == MN_TASK_DETECTION;
    for (cJSON *e = list->child; e && !diff[0] && k < K; e = e->next, k++) {
        const char *now = mn_dataset_class_name(run->train, k), *was = cJSON_IsString(e) ? e->valuestring : "";
        if ((detection && k == 0) || !now || !strncmp(now, was, 31)) continue;
        snprintf(diff, sizeof diff, "class %d is \"%s\" in the checkpoint, \"%.64s\" in the data", k, was, now);
    }
    cJSON_Delete(list);
    if (!diff[0]) return 0;
    if (!allow_changes)
        return mn_error(MN_EINVAL,
                        "%s: the training split's classes differ from the checkpoint's (%s); resume on the data it "
                        "was trained on, or pass --allow-config-change",
                        resume, diff);
    mn_warn("%s: continuing with other classes (%s)", resume, diff);
    return 0;
}

/* The metrics log of a resumed run keeps the lines up to the checkpoint's iteration, no more:
 * the iterations logged after it (before the kill) are about to be run and logged again. A run
 * resumed from its final checkpoint evaluates again, so its old final evaluation goes too. */
static int cut_metrics(const char *path, int64_t upto, bool drop_eval_at_upto)
{
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return 0;
    int rc = mn_read_file(path, (size_t)1 << 31, "metrics log", &text, &len);
    if (rc) return rc;
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return mn_error(MN_ENOMEM, "%s: out of memory", path);
    }
    size_t n_out = 0;
    int64_t dropped = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        long long it;
        /* a line cut by the kill has no newline: it goes too */
        bool keep = nl && sscanf(line, "{\"iter\": %lld", &it) == 1 && it <= upto;
        if (keep && drop_eval_at_upto && it == upto && !strstr(line, "\"lr\": ")) keep = false;
        if (keep) {
            memcpy(out + n_out, line, n + 1);
            n_out += n + 1;
        } else {
            dropped++;
        }
        line += n + (nl != NULL);
    }
    if (dropped) rc = mn_write_file_atomic(path, out, n_out);
    if (!rc && dropped) mn_info("%s: dropped %lld line(s) logged after iteration %lld", path, (long long)dropped, (long long)upto);
    free(out);
    free(text);
    return rc;
}

/* The run's configuration (atomically: a full disk leaves the old file, never an empty one), and
 * the metrics file: appended to when resuming, after cutting it back to the checkpoint. */
static int open_files(drv_run *run, const char *resume, int64_t start)
{
    const mn_config *c = run->c;
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", c->train.out_dir);
    char *js = mn_config_to_json(c);
    if (!js) return mn_error(MN_ENOMEM, "out of memory");
    int rc = mn_write_file_atomic(path, js, strlen(js));
    free(js);
    if (rc) return rc;
    if (resume) rc = cut_metrics(run->path_metrics, start, start >= c->train.iterations);
    if (rc) return rc;
    run->metrics = fopen(run->path_metrics, resume ? "a" : "w");
    if (!run->metrics) return mn_error(MN_EIO, "%s: cannot write: %s", run->path_metrics, strerror(errno));
    return 0;
}

int drv_metrics_flush(drv_run *run)
{
    if (fflush(run->metrics) == 0 && !ferror(run->metrics)) return 0;
    return mn_error(MN_EIO, "%s: write failed: %s", run->path_metrics, strerror(errno));
}

/* The batch of iteration it, starting the next epoch when the loader's is over. */
static int next_batch(drv_run *run, const drv_train_ops *ops, int64_t it, int per_epoch, const void **b)
{
    int rc = ops->next(run->loader, b);
    if (!rc && !*b) { /* epoch boundary */
        rc = mn_loader_start(run->loader, (int)(it / per_epoch), 0);
        if (!rc) rc = ops->next(run->loader, b);
        if (!rc && !*b) rc = mn_error(MN_EINVAL, "the data loader produced an empty epoch");
    }
    return rc;
}

static int write_metrics(drv_run *run, const drv_train_ops *ops, int64_t it, float lr, double grad_norm,
                         const mn_subnet *sn /* (ns) */, int ns, const double *loss /* (ns) */, double seconds)
{
    FILE *f = run->metrics;
    fprintf(f, "{\"iter\": %lld, \"lr\": %.6g, \"loss\": %.7f", (long long)(it + 1), (double)lr, loss[0]);
    if (!isnan(grad_norm)) fprintf(f, ", \"grad_norm\": %.6g", grad_norm);
    if (ops->metrics_losses) ops->metrics_losses(run, f);
    fprintf(f, ", \"subnets\": [");
    for (int k = 0; k < ns; k++) {
        if (k) fprintf(f, ", ");
        ops->metrics_subnet(run, f, &sn[k], k, loss[k]);
    }
    fprintf(f, "], \"seconds\": %.3f}\n", seconds);
    return drv_metrics_flush(run);
}

/* Links (or, where the file system has no hard links, copies) from to to, through a temp name so
 * that `to` is always whole. */
static int keep_copy(const char *from, const char *to)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", to, (long)getpid());
    unlink(tmp);
    int rc = 0;
    if (link(from, tmp) != 0) {
        char *data = NULL;
        size_t n = 0;
        rc = mn_read_file(from, SIZE_MAX / 2, "checkpoint", &data, &n);
        if (!rc) rc = mn_write_file_atomic(to, data, n);
        free(data);
        return rc;
    }
    if (rename(tmp, to) != 0) {
        rc = mn_error(MN_EIO, "%s: cannot replace: %s", to, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

/* Writes the checkpoint of iteration iter as last.safetensors, the one before it becoming
 * previous.safetensors. The new file is written whole (and finite-checked) before either name
 * changes, so a kill or a failure at any point leaves a loadable last.safetensors. */
static int checkpoint(drv_run *run, const drv_train_ops *ops, int64_t iter)
{
    char next[1200];
    snprintf(next, sizeof next, "%s.next", run->path_last);
    int rc = ops->save(run, next, iter);
    if (!rc && access(run->path_last, F_OK) == 0) rc = keep_copy(run->path_last, run->path_prev);
    if (!rc && rename(next, run->path_last) != 0)
        rc = mn_error(MN_EIO, "%s: cannot replace: %s", run->path_last, strerror(errno));
    if (rc) unlink(next);
    else mn_sync_parent_dir(run->path_last);
    return rc;
}

static void close_run(drv_run *run, const drv_train_ops *ops)
{
    mn_loader_close(run->loader);
    mn_dataset_close(run->train);
    mn_dataset_close(run->val);
    mn_sgd_free(&run->opt);
    mn_tape_free(&run->tape);
    ops->close(run);
    if (run->metrics) fclose(run->metrics);
    if (run->lock_fd > 0) close(run->lock_fd);
}

/* Why the run stopped, and what is left to continue from. */
static int stopped(drv_run *run, int64_t it, int rc)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", mn_last_error());
    if (access(run->path_last, F_OK) == 0)
        return mn_error(rc, "stopped at iteration %lld: %s; the last good checkpoint is %s (resume with --resume %s)",
                        (long long)it + 1, why, run->path_last, run->path_last);
    return mn_error(rc, "stopped at iteration %lld: %s; no checkpoint was written yet", (long long)it + 1, why);
}

int drv_train(drv_run *run, const drv_train_ops *ops, const mn_config *c, const mn_train_options *o)
{
    run->c = c;
    run->lock_fd = -1;
    mn_tape_init(&run->tape, 0);
    snprintf(run->path_last, sizeof run->path_last, "%s/last.safetensors", c->train.out_dir);
    snprintf(run->path_prev, sizeof run->path_prev, "%s/previous.safetensors", c->train.out_dir);
    snprintf(run->path_metrics, sizeof run->path_metrics, "%s/metrics.jsonl", c->train.out_dir);
    int rc = mn_config_check(c, "the configuration");
    if (!rc && ops->check) rc = ops->check(run);
    if (!rc) rc = mn_mkdirs(c->train.out_dir);
    if (!rc) rc = lock_folder(run);
    if (!rc) remove_stale_temps(run);
    char *classes = NULL;
    if (!rc)
        rc = o->resume ? check_resume_config(run, o->resume, o->allow_changes, &classes)
                       : check_fresh_folder(run, o->overwrite);
    if (!rc) rc = ops->open(run);
    if (!rc && o->resume) rc = check_resume_classes(run, o->resume, classes, o->allow_changes);
    free(classes);
    mn_sgd_config oc = {c->optim.lr, c->optim.momentum, 0.0f, c->optim.nesterov, c->optim.weight_decay};
    if (!rc) rc = mn_sgd_init(&run->opt, run->ps, &oc);
    int64_t start = 0;
    if (!rc && o->resume) {
        rc = ops->resume(run, o->resume, &start);
        if (!rc) mn_info("resuming %s at iteration %lld", o->resume, (long long)start);
    }
    if (!rc && ops->buffers) rc = ops->buffers(run);
    if (!rc) rc = open_files(run, o->resume, start);
    int per_epoch = rc ? 1 : mn_loader_batches_per_epoch(run->loader);
    if (!rc) rc = mn_loader_start(run->loader, (int)(start / per_epoch), (int)(start % per_epoch));
    mn_progress pg;
    mn_progress_begin(&pg, "train", c->train.iterations, start, c->train.log_every);
    double t_last = mn_now();
    int64_t end = o->stop_at > 0 && o->stop_at < c->train.iterations ? o->stop_at : c->train.iterations;
    bool interrupted = false;
    for (int64_t it = start; !rc && it < end; it++) {
        const void *b = NULL;
        rc = next_batch(run, ops, it, per_epoch, &b);
        if (rc) { /* a file that cannot be read: say where the run stands */
            mn_progress_end(&pg);
            rc = stopped(run, it, rc);
            break;
        }
        mn_subnet sn[MN_MAX_SUBNETS];
        int ns = mn_sandwich(c, c->train.seed, it, sn);
        double loss[MN_MAX_SUBNETS];
        mn_param_zero_grad(run->ps);
        for (int k = 0; k < ns && !rc; k++) rc = ops->pass(run, b, &sn[k], it, k, &loss[k]);
        float lr = mn_lr_at(c, it);
        double grad_norm = NAN; /* before clipping; logged when clipping is on */
        if (!rc && c->optim.clip_grad_norm > 0.0f) rc = mn_grad_clip_norm(run->ps, c->optim.clip_grad_norm, &grad_norm);
        if (!rc) rc = mn_sgd_step(&run->opt, lr);
        if (!rc && ((it + 1) % c->train.log_every == 0 || it + 1 == c->train.iterations)) {
            double now = mn_now();
            rc = write_metrics(run, ops, it, lr, grad_norm, sn, ns, loss, now - t_last);
            t_last = now;
        }
        if (!rc) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f lr %.2e", loss[0], (double)lr);
            mn_progress_update(&pg, it + 1, (double)c->train.batch_size, extra);
        }
        interrupted = !rc && o->stop && *o->stop;
        if (!rc && (interrupted || (it + 1) % c->train.checkpoint_every == 0 || it + 1 == c->train.iterations))
            rc = checkpoint(run, ops, it + 1);
        if (rc) {
            mn_progress_end(&pg);
            rc = stopped(run, it, rc);
            break;
        }
        if (interrupted) {
            mn_progress_end(&pg);
            rc = mn_error(MN_ECANCELED, "interrupted after iteration %lld; checkpoint %s (continue with --resume %s)",
                          (long long)it + 1, run->path_last, run->path_last);
            break;
        }
        if (c->train.eval_every && (it + 1) % c->train.eval_every == 0 && it + 1 < c->train.iterations) {
            mn_progress_end(&pg);
            rc = ops->evaluate(run, it + 1);
            if (!rc) rc = drv_metrics_flush(run);
        }
    }
    mn_progress_end(&pg);
    /* a run resumed from its final checkpoint still gets its final evaluation */
    if (!rc && end == c->train.iterations) {
        rc = ops->evaluate(run, end);
        if (!rc) rc = drv_metrics_flush(run);
    }
    close_run(run, ops);
    return rc;
}

int mn_train(const mn_config *c, const mn_train_options *o)
{
    return c->task == MN_TASK_SEGMENTATION ? drv_train_segmentation(c, o)
           : c->task == MN_TASK_DETECTION  ? drv_train_detection(c, o)
                                           : drv_train_classification(c, o);
}

/* ---- the calibration loop ---- */

int drv_calib_image_bn(mn_loader *ld, mn_slim_bn *const *bns /* (nb) */, int nb, float width, int h, int w, int batches,
                       int (*forward)(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */), void *net)
{
    for (int i = 0; i < nb; i++) mn_slim_bn_reset(bns[i]);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int rc = mn_loader_start(ld, 0, 0);
    for (int b = 0; b < batches && !rc; b++) {
        const mn_seg_batch *bt;
        rc = mn_loader_next(ld, &bt);
        if (!rc && !bt) { /* fewer batches than asked: the epoch is over, start again */
            rc = mn_loader_start(ld, b, 0);
            if (!rc) rc = mn_loader_next(ld, &bt);
            if (!rc && !bt) rc = mn_error(MN_EINVAL, "calibration: the training loader produced an empty epoch");
        }
        if (rc) break;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(bt->images, bt->n, 3, bt->h, bt->w));
        if (bt->h != h || bt->w != w) x = mn_resize_bilinear(&t, x, h, w, true);
        /* training-mode BN with momentum 1/(t+1): the exact mean of the per-batch statistics */
        mn_run r = {.tape = &t, .width = width, .training = true, .bn_momentum = -1.0f};
        rc = x ? forward(net, &r, x) : mn_last_error_code();
    }
    mn_tape_free(&t);
    return rc;
}

int drv_calib_table(const drv_calib_ops *ops, void *self, mn_query_table *table, mn_slim_bn *const *bns /* (nb) */,
                    int nb, const float *train_stats /* (table->n_stats) */, mn_dataset *train_set,
                    const mn_calib_config *g, int batch_size, int workers, uint64_t seed)
{
    float *stats = malloc(sizeof(float) * (size_t)(table->n_stats + 1)); /* + 1: never malloc(0) */
    if (!stats) return mn_error(MN_ENOMEM, "calibration: out of memory");
    mn_loader_options lo = {.batch_size = batch_size, .shuffle = true, .drop_last = true, .workers = workers,
                            .prefetch = 2, .seed = seed};
    if (mn_dataset_size(train_set) < batch_size) lo.batch_size = mn_dataset_size(train_set);
    mn_loader *ld = NULL;
    int rc = ops->open(self, train_set, &lo, &ld);
    int64_t n_stats = table->n_stats;
    mn_query_free(table);
    mn_query_init(table, ops->metric);
    table->n_stats = n_stats;
    mn_progress pg;
    int total = g->n_widths * g->n_sizes, done = 0;
    mn_progress_begin(&pg, "calibrate", total, 0, 1);
    for (int s = 0; s < g->n_sizes && !rc; s++)
        for (int k = 0; k < g->n_widths && !rc; k++) {
            float w = g->widths[k];
            int64_t macs = 0;
            double score = 0;
            rc = ops->point(self, ld, w, g->sizes[s], g->batches, &macs, &score);
            double shown = rc ? 0.0 : score;
            if (!rc) {
                mn_query_save_stats(stats, bns, nb);
                rc = mn_query_add(table, w, g->sizes[s][0], g->sizes[s][1], macs, score, stats);
            }
            char size[48], extra[96];
            ops->size_text(size, sizeof size, g->sizes[s]);
            snprintf(extra, sizeof extra, "width %.2f %s %s %.2f%%", (double)w, size, ops->metric, 100 * shown);
            mn_progress_update(&pg, ++done, 0, extra); /* a configuration is no fixed number of images */
        }
    mn_progress_end(&pg);
    /* leave the model with the statistics it was trained with */
    mn_query_load_stats(train_stats, bns, nb);
    mn_loader_close(ld);
    free(stats);
    return rc;
}
