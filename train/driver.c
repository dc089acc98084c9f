/* The training loop the three tasks share (train/driver.h). */
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

/* ---- the training loop ---- */

int drv_open_splits(drv_run *run)
{
    const mn_config *c = run->c;
    mn_dataset_options o;
    mn_config_dataset_options(c, c->data.train_split, &o);
    o.reporter = run->rep;
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

mn_loader_options drv_loader_options(const drv_run *run)
{
    const mn_config *c = run->c;
    return (mn_loader_options){.batch_size = c->train.batch_size, .shuffle = true, .drop_last = true,
                               .workers = c->data.workers, .prefetch = 2, .seed = c->train.seed,
                               .rank = run->rank, .ranks = run->ranks};
}

mn_comm *drv_sync_bn(const drv_run *run) { return run->ranks > 1 && run->c->model.sync_bn ? run->comm : NULL; }

int drv_mean_share(drv_run *run, int64_t mine, float *factor)
{
    *factor = 1.0f;
    if (run->ranks < 2) return 0;
    double total = (double)mine;
    int rc = mn_comm_sum_f64(run->comm, &total, 1);
    if (!rc) *factor = total > 0 ? (float)((double)mine * run->ranks / total) : 0.0f;
    return rc;
}

int drv_open_image_loader(drv_run *run)
{
    mn_seg_aug aug = mn_config_seg_aug(run->c, true);
    mn_loader_options lo = drv_loader_options(run);
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
    if (removed) mn_report(run->rep, MN_LOG_INFO, "%s: removed %d temporary file(s) left by an interrupted write", dir, removed);
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
    mn_report(run->rep, MN_LOG_WARN, "%s: --overwrite: starting a new run over the one that was there", dir);
    return 0;
}

/* Refuses to resume under a configuration that would compute another run than the checkpoint's,
 * listing the keys; allow_changes turns that into a warning. */
static int check_resume_config(drv_run *run, const char *resume, bool allow_changes, char **classes)
{
    mn_safetensors st;
    int rc = mn_st_read(resume, &st);
    if (rc) return rc;
    const char *stored = mn_st_meta(&st, "config"), *names = mn_st_meta(&st, "classes");
    mn_config old;
    mn_config_default(&old);
    rc = stored ? mn_config_parse(stored, resume, &old)
                : mn_error(MN_EFORMAT, "%s: metadata \"config\" is missing (not a mutualnet checkpoint?)", resume);
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
    mn_report(run->rep, MN_LOG_WARN, "%s: continuing with %d changed key(s): %s", resume, n, diff);
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
    mn_report(run->rep, MN_LOG_WARN, "%s: continuing with other classes (%s)", resume, diff);
    return 0;
}

/* The metrics log of a resumed run keeps the lines up to the checkpoint's iteration, no more:
 * the iterations logged after it (before the kill) are about to be run and logged again. A run
 * resumed from its final checkpoint evaluates again, so its old final evaluation goes too. */
static int cut_metrics(drv_run *run, const char *path, int64_t upto, bool drop_eval_at_upto)
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
    if (!rc && dropped) mn_report(run->rep, MN_LOG_INFO, "%s: dropped %lld line(s) logged after iteration %lld", path, (long long)dropped, (long long)upto);
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
    if (resume) rc = cut_metrics(run, run->path_metrics, start, start >= c->train.iterations);
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
    /* the gradient reduction's share of the interval, for docs/SCALING.md's arithmetic, and the
     * data loader's: the time the training thread waited for batches (the workers' decoding and
     * augmenting did not keep up) */
    if (run->ranks > 1) fprintf(f, "], \"reduce_seconds\": %.4f, \"seconds\": %.3f", run->reduce_seconds, seconds);
    else fprintf(f, "], \"seconds\": %.3f", seconds);
    fprintf(f, ", \"data_seconds\": %.4f}\n", run->data_seconds);
    run->reduce_seconds = 0;
    run->data_seconds = 0;
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
    free(run->bucket);
}

/* ---- data-parallel ranks ---- */

/* Every rank's gradients averaged, in buckets of a bounded buffer (the parameters' gradients are
 * not one block of memory). */
static int average_gradients(drv_run *run)
{
    if (run->ranks < 2) return 0;
    enum { BUCKET = 1 << 22 };
    /* allocated once: a fresh 16 MB each iteration would be fresh pages the kernel zeroes each time */
    if (!run->bucket && !(run->bucket = malloc(sizeof(float) * BUCKET)))
        return mn_error(MN_ENOMEM, "gradient averaging: out of memory");
    float *buf = run->bucket;
    const float inv = 1.0f / (float)run->ranks;
    int rc = 0, first = 0;
    int64_t used = 0;
    mn_param **items = run->ps->items;
    for (int i = 0; i <= run->ps->n && !rc; i++) {
        int64_t n = i < run->ps->n && items[i]->var.grad.data ? mn_tensor_numel(&items[i]->var.grad) : 0;
        bool flush = i == run->ps->n || (used + n > BUCKET && used > 0);
        if (flush) { /* reduce parameters [first, i) */
            rc = mn_comm_sum_f32(run->comm, buf, used);
            for (int64_t off = 0; !rc && first < i; first++) {
                if (!items[first]->var.grad.data) continue;
                int64_t m = mn_tensor_numel(&items[first]->var.grad);
                float *g = items[first]->var.grad.data;
                for (int64_t k = 0; k < m; k++) g[k] = buf[off + k] * inv;
                off += m;
            }
            used = 0;
        }
        if (i == run->ps->n || !n) continue;
        if (n > BUCKET) { /* a parameter larger than a bucket goes alone, in place */
            float *g = items[i]->var.grad.data;
            rc = mn_comm_sum_f32(run->comm, g, n);
            for (int64_t k = 0; !rc && k < n; k++) g[k] *= inv;
            first = i + 1;
            continue;
        }
        memcpy(buf + used, items[i]->var.grad.data, sizeof(float) * (size_t)n);
        used += n;
    }
    return rc;
}

/* Without synchronised BN each rank's running statistics follow its own images: rank 0's are
 * everyone's, as PyTorch's DistributedDataParallel broadcasts its buffers. */
static int share_buffers(drv_run *run)
{
    if (run->ranks < 2 || run->c->model.sync_bn) return 0;
    int rc = 0;
    for (int i = 0; i < run->ps->n && !rc; i++) {
        mn_param *p = run->ps->items[i];
        if (p->flags & MN_PARAM_BUFFER)
            rc = run->comm->bcast(run->comm, p->var.val.data, (int64_t)sizeof(float) * mn_tensor_numel(&p->var.val), 0);
    }
    return rc;
}

/* Stops the run when the ranks' parameters have drifted apart (they must stay bit-identical:
 * the same averaged gradients, the same optimiser): a checksum of every value, compared. */
static int check_parameters(drv_run *run, int64_t it)
{
    if (run->ranks < 2) return 0;
    double sum[2] = {0, 0};
    for (int i = 0; i < run->ps->n; i++) {
        const mn_tensor *v = &run->ps->items[i]->var.val;
        const int64_t n = mn_tensor_numel(v);
        for (int64_t k = 0; k < n; k++) sum[0] += v->data[k], sum[1] += (double)v->data[k] * (double)(k % 7 + 1);
    }
    double lo[2] = {sum[0], sum[1]}, hi[2] = {sum[0], sum[1]};
    int rc = run->comm->allreduce_f64(run->comm, lo, 2, MN_COMM_MIN);
    if (!rc) rc = run->comm->allreduce_f64(run->comm, hi, 2, MN_COMM_MAX);
    if (!rc && (lo[0] != hi[0] || lo[1] != hi[1]))
        rc = mn_error(MN_ENUMERIC, "after iteration %lld the ranks' parameters differ (checksums %.17g .. %.17g): "
                                   "the ranks no longer train one model",
                      (long long)it + 1, lo[0], hi[0]);
    return rc;
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
    run->comm = o->comm;
    run->rank = mn_comm_rank(o->comm);
    run->ranks = mn_comm_size(o->comm);
    bool writer = run->rank == 0; /* rank 0 alone owns the run folder and speaks */
    run->rep = writer ? o->reporter : NULL;
    run->lock_fd = -1;
    mn_tape_init(&run->tape, 0);
    snprintf(run->path_last, sizeof run->path_last, "%s/last.safetensors", c->train.out_dir);
    snprintf(run->path_prev, sizeof run->path_prev, "%s/previous.safetensors", c->train.out_dir);
    snprintf(run->path_metrics, sizeof run->path_metrics, "%s/metrics.jsonl", c->train.out_dir);
    int rc = mn_config_check(c, "the configuration");
    if (!rc && ops->check) rc = ops->check(run);
    if (!rc && run->ranks > 1 && c->train.batch_size % run->ranks)
        rc = mn_error(MN_EINVAL, "train.batch_size %d (the global batch) does not split into %d equal parts: make it "
                                 "a multiple of the rank count",
                      c->train.batch_size, run->ranks);
    if (!rc && writer) rc = mn_mkdirs(c->train.out_dir);
    if (!rc && writer) rc = lock_folder(run);
    if (!rc && writer) remove_stale_temps(run);
    char *classes = NULL;
    if (!rc)
        rc = o->resume ? check_resume_config(run, o->resume, o->allow_changes, &classes)
             : writer  ? check_fresh_folder(run, o->overwrite)
                       : 0;
    rc = mn_comm_agree(run->comm, rc); /* the folder checks are rank 0's: the others learn of a refusal here */
    if (!rc) rc = ops->open(run);
    if (!rc && o->resume) rc = check_resume_classes(run, o->resume, classes, o->allow_changes);
    free(classes);
    mn_sgd_config oc = {c->optim.lr, c->optim.momentum, 0.0f, c->optim.nesterov, c->optim.weight_decay};
    if (!rc) rc = mn_sgd_init(&run->opt, run->ps, &oc);
    int64_t start = 0;
    if (!rc && o->resume) {
        rc = ops->resume(run, o->resume, &start);
        if (!rc) mn_report(run->rep, MN_LOG_INFO, "resuming %s at iteration %lld", o->resume, (long long)start);
    }
    if (!rc && ops->buffers) rc = ops->buffers(run);
    if (!rc && writer) rc = open_files(run, o->resume, start);
    /* the other ranks' metrics lines (the tasks write evaluations there too) go nowhere */
    if (!rc && !writer && !(run->metrics = fopen("/dev/null", "w")))
        rc = mn_error(MN_EIO, "/dev/null: cannot open: %s", strerror(errno));
    rc = mn_comm_agree(run->comm, rc);
    if (!rc && run->ranks > 1)
        mn_report(run->rep, MN_LOG_INFO, "data-parallel: %d ranks, %d images each per batch of %d, BN %s", run->ranks,
                  c->train.batch_size / run->ranks, c->train.batch_size,
                  c->model.sync_bn ? "synchronised (global batch statistics)" : "per rank (model.sync_bn false)");
    int per_epoch = rc ? 1 : mn_loader_batches_per_epoch(run->loader);
    if (!rc) rc = mn_loader_start(run->loader, (int)(start / per_epoch), (int)(start % per_epoch));
    mn_progress pg;
    mn_progress_begin(&pg, run->rep, "train", c->train.iterations, start, c->train.log_every);
    double t_last = mn_now();
    int64_t end = o->stop_at > 0 && o->stop_at < c->train.iterations ? o->stop_at : c->train.iterations;
    bool interrupted = false;
    for (int64_t it = start; !rc && it < end; it++) {
        const void *b = NULL;
        const double t_data = mn_now();
        rc = next_batch(run, ops, it, per_epoch, &b);
        run->data_seconds += mn_now() - t_data;
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
        if (run->ranks > 1) { /* a rank whose pass failed stops them all; then one model's gradient */
            rc = mn_comm_agree(run->comm, rc);
            double t0 = mn_now();
            if (!rc) rc = average_gradients(run);
            run->reduce_seconds += mn_now() - t0;
            if (!rc) rc = mn_comm_sum_f64(run->comm, loss, ns); /* each pass's loss over the global batch */
            for (int k = 0; k < ns && !rc; k++) loss[k] /= run->ranks;
        }
        float lr = mn_lr_at(c, it);
        double grad_norm = NAN; /* before clipping; logged when clipping is on */
        if (!rc && c->optim.clip_grad_norm > 0.0f) rc = mn_grad_clip_norm(run->ps, c->optim.clip_grad_norm, &grad_norm);
        if (!rc) rc = mn_sgd_step(&run->opt, lr);
        if (!rc) rc = share_buffers(run);
        if (!rc && writer && ((it + 1) % c->train.log_every == 0 || it + 1 == c->train.iterations)) {
            double now = mn_now();
            rc = write_metrics(run, ops, it, lr, grad_norm, sn, ns, loss, now - t_last);
            t_last = now;
        }
        if (!rc && run->ranks > 1 && ((it + 1) % c->train.check_every == 0 || it + 1 == end))
            rc = check_parameters(run, it);
        if (!rc) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f lr %.2e", loss[0], (double)lr);
            mn_progress_update(&pg, it + 1, (double)c->train.batch_size, extra);
        }
        interrupted = !rc && o->stop && *o->stop;
        if (run->ranks > 1) { /* a signal may reach one rank only: all stop at the same iteration */
            double any = interrupted;
            int e = rc ? rc : mn_comm_reduce_f64(run->comm, &any, 1, MN_COMM_MAX);
            if (!rc) rc = e;
            interrupted = !rc && any > 0;
        }
        if (!rc && (interrupted || (it + 1) % c->train.checkpoint_every == 0 || it + 1 == c->train.iterations)) {
            if (writer) rc = checkpoint(run, ops, it + 1);
            rc = mn_comm_agree(run->comm, rc);
        }
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
