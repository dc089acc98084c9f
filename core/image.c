/* Image files through stb_image / stb_image_write (the implementation is in -lstb).
 *
 * stb_image decodes leniently: a JPEG cut short decodes to grey blocks and a PNG with a broken
 * chunk may decode to garbage without complaint. So the whole file is read into memory and its
 * container is checked first (PNG: every chunk present with a valid CRC up to IEND; JPEG: every
 * marker segment present up to EOI, each scan long enough for its blocks; BMP: the pixel array
 * fits the file). The header's width and height are checked against the caller's pixel limit
 * as soon as they are read, so a tiny file claiming 30000x30000 costs no allocation. Only then
 * is it decoded. Other formats stb knows (GIF, TGA, PSD, PNM, HDR, PIC) are refused because
 * they cannot be checked this way. The stb flip setters are never called. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "mn/fileio.h"
#include "mn/image.h"

enum fmt { FMT_PNG, FMT_JPEG, FMT_BMP };

typedef struct png_info {
    uint32_t w, h;
    int depth;   /* bits per sample: 1, 2, 4, 8 or 16 */
    int color;   /* IHDR colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
} png_info;

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }

/* CRC-32 (the PNG/zlib polynomial), four bits at a time: a 16-entry table is enough here. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
        0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

static int read_whole(const char *path, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error(MN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = mn_error(MN_EIO, "%s: not a regular file", path);
    } else if (sb.st_size == 0) {
        rc = mn_error(MN_EFORMAT, "%s: empty file", path);
    } else if ((uint64_t)sb.st_size > (uint64_t)INT_MAX) {
        rc = mn_error(MN_EFORMAT, "%s: %lld bytes is too large for an image", path, (long long)sb.st_size);
    } else {
        size_t n = (size_t)sb.st_size;
        *buf = malloc(n);
        if (!*buf)
            rc = mn_error(MN_ENOMEM, "%s: out of memory reading %zu bytes", path, n);
        else if (fread(*buf, 1, n, f) != n)
            rc = mn_error(MN_EIO, "%s: read failed: %s", path, ferror(f) ? strerror(errno) : "file shrank");
        else
            *len = n;
    }
    fclose(f);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

static int sniff(const char *path, const uint8_t *b, size_t n, enum fmt *fmt)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(b, png_sig, 8)) *fmt = FMT_PNG;
    else if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) *fmt = FMT_JPEG;
    else if (n >= 2 && b[0] == 'B' && b[1] == 'M') *fmt = FMT_BMP;
    else return mn_error(MN_EFORMAT, "%s: not a PNG, JPEG or BMP file (unrecognised signature)", path);
    return 0;
}

/* "144.0 Mpx", or "1200 px" for small limits that would print as 0.0 Mpx. */
static void count_px(char *out, size_t n, double px)
{
    if (px >= 1e5) snprintf(out, n, "%.1f Mpx", px / 1e6);
    else snprintf(out, n, "%.0f px", px);
}

/* The header's size against the limit, before anything is allocated for the pixels. */
static int check_size(const char *path, int64_t w, int64_t h, int64_t max_px)
{
    if (w <= 0 || h <= 0)
        return mn_error(MN_EFORMAT, "%s: corrupt image header: %lldx%lld pixels (sizes must be positive)", path,
                        (long long)w, (long long)h);
    if (w > max_px / h) { /* w * h > max_px without forming the product (PNG sizes reach 2^32) */
        char size[32], limit[32];
        count_px(size, sizeof size, (double)w * (double)h);
        count_px(limit, sizeof limit, (double)max_px);
        return mn_error(MN_EFORMAT,
                        "%s: image is %lldx%lld (%s), above the limit of %s (data.max_pixels / --max-pixels raises it)",
                        path, (long long)w, (long long)h, size, limit);
    }
    return 0;
}

/* Deflate expands at most 1032:1 (a 258-byte match in two bits), so compressed data too short
 * for the scan lines cannot be a whole image. stb would first allocate the full scan-line
 * buffer for it, then fail or fill the rest with zeros. */
static int check_png_data(const char *path, const png_info *info, size_t idat_bytes)
{
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4}; /* per colour type; 0: invalid (stb refuses) */
    if (info->color < 0 || info->color > 6 || !samples[info->color] || info->depth < 1 || info->depth > 16) return 0;
    /* the smallest possible scan-line data (not interlaced): a filter byte per row plus the samples */
    uint64_t row = 1 + ((uint64_t)info->w * (uint64_t)samples[info->color] * (uint64_t)info->depth + 7) / 8;
    double raw = (double)row * (double)info->h;
    if (raw > 1032.0 * ((double)idat_bytes + 64))
        return mn_error(MN_EFORMAT,
                        "%s: truncated PNG: %zu bytes of image data cannot hold %ux%u pixels (%.0f bytes of scan lines)",
                        path, idat_bytes, info->w, info->h, raw);
    return 0;
}

/* Walks the chunks: IHDR first, valid CRCs on critical chunks (ancillary ones are skipped as
 * libpng does), at least one IDAT, and IEND before the data runs out. */
static int check_png(const char *path, const uint8_t *b, size_t n, int64_t max_px, png_info *info)
{
    size_t at = 8, idat_bytes = 0;
    bool seen_ihdr = false, seen_idat = false;
    for (;;) {
        if (n - at < 12)
            return mn_error(MN_EFORMAT, "%s: truncated PNG: %s", path, seen_idat ? "no IEND chunk" : "image data missing");
        uint32_t len = be32(b + at);
        const uint8_t *type = b + at + 4;
        char name[5] = {0};
        for (int i = 0; i < 4; i++) name[i] = (type[i] >= 32 && type[i] < 127) ? (char)type[i] : '?';
        if (len > 0x7fffffffu || (size_t)len > n - at - 12)
            return mn_error(MN_EFORMAT, "%s: truncated PNG: chunk %s at byte %zu needs %u bytes, file ends first",
                            path, name, at, len);
        bool critical = !(type[0] & 0x20);
        if (critical && crc32_update(0, type, (size_t)len + 4) != be32(b + at + 8 + len))
            return mn_error(MN_EFORMAT, "%s: corrupt PNG: CRC mismatch in chunk %s at byte %zu", path, name, at);
        if (!seen_ihdr) {
            if (memcmp(type, "IHDR", 4) || len != 13)
                return mn_error(MN_EFORMAT, "%s: corrupt PNG: first chunk is %s, expected IHDR", path, name);
            info->w = be32(b + at + 8);
            info->h = be32(b + at + 12);
            info->depth = b[at + 16];
            info->color = b[at + 17];
            seen_ihdr = true;
            int rc = check_size(path, info->w, info->h, max_px);
            if (rc) return rc;
        } else if (!memcmp(type, "IDAT", 4)) {
            /* legal but never written by an encoder, and stb_image does pointer arithmetic on NULL
             * for it (undefined behaviour; found by fuzzing) */
            if (len == 0) return mn_error(MN_EFORMAT, "%s: corrupt PNG: empty IDAT chunk at byte %zu", path, at);
            seen_idat = true;
            idat_bytes += len;
        } else if (!memcmp(type, "IEND", 4)) {
            if (!seen_idat) return mn_error(MN_EFORMAT, "%s: corrupt PNG: IEND before any image data", path);
            return check_png_data(path, info, idat_bytes);
        }
        at += 12 + (size_t)len;
    }
}

/* What a JPEG frame header (SOF) says, for bounding the size of its scans. */
typedef struct jpeg_frame {
    bool seen, progressive;
    int64_t w, h;
    int ncomp, hmax, vmax;
    int id[4], hs[4], vs[4], tq[4];
} jpeg_frame;

static int parse_sof(const char *path, const uint8_t *seg, size_t len, uint8_t code, int64_t max_px, jpeg_frame *f)
{
    /* seg: P(1) Y(2) X(2) Nf(1), then Nf x {id, H<<4|V, Tq} */
    if (len < 6) return mn_error(MN_EFORMAT, "%s: corrupt JPEG: frame header cut short", path);
    int64_t h = be16(seg + 1), w = be16(seg + 3);
    if (h == 0) /* a DNL marker would give it later: stb does not support that */
        return mn_error(MN_EFORMAT, "%s: corrupt JPEG: the frame header gives a height of 0", path);
    int rc = check_size(path, w, h, max_px);
    if (rc) return rc;
    if (f->seen) return 0; /* stb reads the first frame */
    f->seen = true;
    f->progressive = code == 0xc2;
    f->w = w;
    f->h = h;
    int nf = seg[5];
    if (nf < 1 || nf > 4 || len < 6 + 3 * (size_t)nf) return 0; /* stb refuses these itself */
    f->ncomp = nf;
    f->hmax = f->vmax = 1;
    for (int i = 0; i < nf; i++) {
        f->id[i] = seg[6 + 3 * i];
        f->hs[i] = seg[7 + 3 * i] >> 4;
        f->vs[i] = seg[7 + 3 * i] & 15;
        f->tq[i] = seg[8 + 3 * i];
        if (f->hs[i] < 1 || f->hs[i] > 4 || f->vs[i] < 1 || f->vs[i] > 4) {
            f->ncomp = 0; /* bad sampling factors: stb refuses them, no bound here */
            return 0;
        }
        if (f->hs[i] > f->hmax) f->hmax = f->hs[i];
        if (f->vs[i] > f->vmax) f->vmax = f->vs[i];
    }
    return 0;
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* The fewest bytes of entropy-coded data a valid scan can have: every 8x8 block of a
 * sequential scan costs at least two Huffman codes (DC and end-of-block, 1 bit or more each),
 * every block of a progressive DC scan at least one bit; progressive AC scans can cover many
 * blocks with one end-of-band run, so they get no bound. A file cut short and patched with an
 * end marker decodes to grey blocks in stb without complaint; this catches the gross cases
 * (the 792-byte "12000x12000" JPEG) without decoding. seg is the SOS segment body. */
static uint64_t scan_min_bytes(const jpeg_frame *f, const uint8_t *seg, size_t len)
{
    if (!f->seen || !f->ncomp || len < 1) return 0;
    int ns = seg[0];
    if (ns < 1 || ns > 4 || len < 1 + 2 * (size_t)ns + 3) return 0;
    int ss = seg[1 + 2 * ns];
    if (f->progressive && ss != 0) return 0;
    uint64_t blocks = 0;
    if (ns == 1) {
        /* a non-interleaved scan covers the component's own blocks, without MCU padding */
        int k = -1;
        for (int i = 0; i < f->ncomp; i++)
            if (f->id[i] == seg[1]) k = i;
        if (k < 0) return 0;
        uint64_t cw = ceil_div((uint64_t)f->w * (uint64_t)f->hs[k], (uint64_t)f->hmax);
        uint64_t ch = ceil_div((uint64_t)f->h * (uint64_t)f->vs[k], (uint64_t)f->vmax);
        blocks = ceil_div(cw, 8) * ceil_div(ch, 8);
    } else {
        uint64_t per_mcu = 0;
        for (int j = 0; j < ns; j++) {
            int k = -1;
            for (int i = 0; i < f->ncomp; i++)
                if (f->id[i] == seg[1 + 2 * j]) k = i;
            if (k < 0) return 0;
            per_mcu += (uint64_t)(f->hs[k] * f->vs[k]);
        }
        blocks = ceil_div((uint64_t)f->w, 8 * (uint64_t)f->hmax) * ceil_div((uint64_t)f->h, 8 * (uint64_t)f->vmax) *
                 per_mcu;
    }
    return blocks * (f->progressive ? 1 : 2) / 8;
}

/* Walks the marker segments: every segment's declared length must fit, the frame header's
 * size must be within the limit, and the entropy-coded data of each scan must be followed by
 * a marker, ending at EOI (bytes after EOI are ignored, as decoders do). */
/* A DHT segment holds tables of (class/id byte, 16 code counts, the sum of the counts in symbols)
 * that must fill it exactly, each with at most 256 codes: stb_image 2.27 checks neither and writes
 * a code-length array of 257 bytes for as many codes as the counts add up to (found by fuzzing: a
 * short segment whose counts run into the next marker wrote past the array). */
static int check_dht(const char *path, const uint8_t *body, size_t len, size_t at, unsigned *defined)
{
    size_t i = 0;
    while (i < len) {
        if (len - i < 17)
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: Huffman table at byte %zu is cut short", path, at);
        if ((body[i] >> 4) > 1 || (body[i] & 15) > 3)
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: Huffman table class/id 0x%02x at byte %zu", path, body[i],
                            at);
        size_t codes = 0;
        for (int k = 1; k <= 16; k++) codes += body[i + k];
        if (codes > 256 || codes > len - i - 17)
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: Huffman table at byte %zu declares %zu codes (%zu bytes left)",
                            path, at, codes, len - i - 17);
        *defined |= 1u << ((body[i] >> 4) * 4 + (body[i] & 15)); /* bit class * 4 + id */
        i += 17 + codes;
    }
    return 0;
}

/* Quantisation tables a DQT segment defines (id 0..3, 8- or 16-bit entries). */
static int check_dqt(const char *path, const uint8_t *body, size_t len, size_t at, unsigned *defined)
{
    size_t i = 0;
    while (i < len) {
        int precision = body[i] >> 4, id = body[i] & 15;
        size_t size = 1 + (precision ? 128 : 64);
        if (precision > 1 || id > 3 || len - i < size)
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: quantisation table at byte %zu", path, at);
        *defined |= 1u << id;
        i += size;
    }
    return 0;
}

/* A scan may use only tables defined before it: stb_image 2.27 decodes with whatever an undefined
 * table holds and indexes past its arrays (found by fuzzing). sos: Ns, Ns x {id, Td<<4|Ta}, Ss,
 * Se, Ah<<4|Al. A progressive DC refinement uses no Huffman table, a DC scan no AC table and an
 * AC scan no DC table. */
static int check_scan_tables(const char *path, const jpeg_frame *f, const uint8_t *sos, size_t len, size_t at,
                             unsigned huff, unsigned quant)
{
    if (len < 1 || len < 1 + 2 * (size_t)sos[0] + 3) return 0; /* stb refuses these itself */
    int ns = sos[0], ss = sos[1 + 2 * ns], ah = sos[3 + 2 * ns] >> 4;
    bool dc = !f->progressive || (ss == 0 && ah == 0), ac = !f->progressive || ss > 0;
    for (int k = 0; k < ns; k++) {
        int td = sos[2 + 2 * k] >> 4, ta = sos[2 + 2 * k] & 15;
        if ((dc && (td > 3 || !(huff >> td & 1))) || (ac && (ta > 3 || !(huff >> (4 + ta) & 1))))
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: the scan at byte %zu uses a Huffman table no DHT defined",
                            path, at);
    }
    for (int c = 0; c < f->ncomp; c++)
        if (f->tq[c] > 3 || !(quant >> f->tq[c] & 1))
            return mn_error(MN_EFORMAT,
                            "%s: corrupt JPEG: the scan at byte %zu needs quantisation table %d, which no DQT defined",
                            path, at, f->tq[c]);
    return 0;
}

static int check_jpeg(const char *path, const uint8_t *b, size_t n, int64_t max_px)
{
    size_t at = 2;
    bool seen_sos = false;
    jpeg_frame frame = {0};
    unsigned huff = 0, quant = 0; /* tables defined so far: DC ids in bits 0..3, AC in 4..7 */
    for (;;) {
        /* a marker: 0xff (possibly repeated as fill) then a code; stray bytes before it are
         * skipped as libjpeg does (with a warning there) */
        while (at < n && b[at] != 0xff) at++;
        while (at + 1 < n && b[at + 1] == 0xff) at++;
        if (n - at < 2) return mn_error(MN_EFORMAT, "%s: truncated JPEG: no end-of-image marker", path);
        uint8_t code = b[at + 1];
        at += 2;
        if (code == 0xd9) {
            if (!seen_sos) return mn_error(MN_EFORMAT, "%s: corrupt JPEG: end of image before any scan", path);
            return 0;
        }
        if (code == 0x01 || (code >= 0xd0 && code <= 0xd7)) continue; /* markers without a length */
        if (code == 0xd8 || code == 0x00)
            return mn_error(MN_EFORMAT, "%s: corrupt JPEG: unexpected marker 0x%02x at byte %zu", path, code, at - 2);
        if (n - at < 2) return mn_error(MN_EFORMAT, "%s: truncated JPEG: segment 0x%02x cut short", path, code);
        size_t seg = (size_t)b[at] << 8 | b[at + 1];
        if (seg < 2 || seg > n - at)
            return mn_error(MN_EFORMAT, "%s: truncated JPEG: segment 0x%02x at byte %zu needs %zu bytes", path, code,
                            at - 2, seg);
        const uint8_t *body = b + at + 2;
        if (code == 0xc4 || code == 0xdb || code == 0xda) {
            int rc = code == 0xc4   ? check_dht(path, body, seg - 2, at - 2, &huff)
                     : code == 0xdb ? check_dqt(path, body, seg - 2, at - 2, &quant)
                                    : check_scan_tables(path, &frame, body, seg - 2, at - 2, huff, quant);
            if (rc) return rc;
        }
        /* SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc) */
        if (code >= 0xc0 && code <= 0xcf && code != 0xc4 && code != 0xc8 && code != 0xcc) {
            int rc = parse_sof(path, body, seg - 2, code, max_px, &frame);
            if (rc) return rc;
        }
        at += seg;
        if (code == 0xda) {
            seen_sos = true;
            uint64_t need = scan_min_bytes(&frame, body, seg - 2);
            size_t start = at;
            /* entropy-coded data: 0xff is stuffed as ff 00; ff d0..d7 are restart markers */
            for (;;) {
                while (at < n && b[at] != 0xff) at++;
                if (n - at < 2) return mn_error(MN_EFORMAT, "%s: truncated JPEG: scan data runs to the end of the file", path);
                uint8_t c = b[at + 1];
                if (c == 0x00 || (c >= 0xd0 && c <= 0xd7) || c == 0xff) {
                    at += (c == 0xff) ? 1 : 2;
                    continue;
                }
                break;
            }
            if ((uint64_t)(at - start) < need)
                return mn_error(MN_EFORMAT,
                                "%s: truncated JPEG: the scan at byte %zu has %zu bytes of data, a %lldx%lld image "
                                "needs at least %llu",
                                path, start, at - start, (long long)frame.w, (long long)frame.h,
                                (unsigned long long)need);
        }
    }
}

/* The uncompressed pixel array stb reads must lie inside the file (stb would read zeros). */
static int check_bmp(const char *path, const uint8_t *b, size_t n, int64_t max_px)
{
    if (n < 30) return mn_error(MN_EFORMAT, "%s: truncated BMP header", path);
    uint32_t off = le32(b + 10), hsize = le32(b + 14);
    int64_t w, h;
    int bpp;
    if (hsize == 12) {
        w = (int16_t)(b[18] | b[19] << 8);
        h = (int16_t)(b[20] | b[21] << 8);
        bpp = b[24] | b[25] << 8;
    } else {
        if (n < 34) return mn_error(MN_EFORMAT, "%s: truncated BMP header", path);
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        bpp = b[28] | b[29] << 8;
        uint32_t comp = le32(b + 30);
        if (comp != 0 && comp != 3 && comp != 6)
            return mn_error(MN_EFORMAT, "%s: compressed BMP (method %u) is not supported", path, comp);
    }
    if (h < 0) h = -h; /* negative: rows stored top-down */
    int rc = check_size(path, w, h, max_px);
    if (rc) return rc;
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return mn_error(MN_EFORMAT, "%s: corrupt BMP header (%lldx%lld, %d bits)", path, (long long)w, (long long)h, bpp);
    uint64_t stride = ((uint64_t)w * (uint64_t)bpp + 31) / 32 * 4;
    uint64_t need = (uint64_t)off + stride * (uint64_t)h;
    if (need > n)
        return mn_error(MN_EFORMAT, "%s: truncated BMP: pixel data needs %llu bytes, file has %zu", path,
                        (unsigned long long)need, n);
    return 0;
}

static int check_container(const char *path, const uint8_t *b, size_t n, int64_t max_px, enum fmt *fmt,
                           png_info *png)
{
    int rc = sniff(path, b, n, fmt);
    if (rc) return rc;
    switch (*fmt) {
    case FMT_PNG: return check_png(path, b, n, max_px, png);
    case FMT_JPEG: return check_jpeg(path, b, n, max_px);
    case FMT_BMP: return check_bmp(path, b, n, max_px);
    }
    return 0;
}

static int decode(const char *path, const uint8_t *b, size_t n, int channels, mn_image *out)
{
    int w = 0, h = 0, stored = 0;
    uint8_t *px = stbi_load_from_memory(b, (int)n, &w, &h, &stored, channels);
    if (!px) {
        const char *why = stbi_failure_reason();
        return mn_error(MN_EFORMAT, "%s: cannot decode image: %s", path, why ? why : "unknown reason");
    }
    out->w = w;
    out->h = h;
    out->c = channels ? channels : stored;
    /* stb allocates with malloc (STBI_MALLOC default), so mn_image_free's free() matches */
    out->data = px;
    return 0;
}

int mn_image_load_max(const char *path, int channels, int64_t max_pixels, mn_image *out)
{
    memset(out, 0, sizeof *out);
    if (max_pixels <= 0) max_pixels = MN_IMAGE_DEFAULT_MAX_PIXELS;
    if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
        return mn_error(MN_EINVAL, "%s: cannot load with %d channels (0, 1, 3 or 4)", path, channels);
    uint8_t *b;
    size_t n;
    int rc = read_whole(path, &b, &n);
    if (rc) return rc;
    enum fmt fmt;
    png_info png;
    rc = check_container(path, b, n, max_pixels, &fmt, &png);
    if (!rc) rc = decode(path, b, n, channels, out);
    free(b);
    return rc;
}

int mn_image_load(const char *path, int channels, mn_image *out)
{
    return mn_image_load_max(path, channels, 0, out);
}

/* A copy of a palette PNG relabelled as greyscale of the same bit depth: the filtered scan lines
 * are identical, so stb decodes the raw palette indices instead of expanding them to colours.
 * PLTE and tRNS are dropped (tRNS of a palette image is not valid for grey). */
static int palette_as_grey(const char *path, const uint8_t *b, size_t n, uint8_t **outp, size_t *outn)
{
    uint8_t *o = malloc(n);
    if (!o) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    memcpy(o, b, 8);
    size_t at = 8, k = 8;
    for (;;) {
        uint32_t len = be32(b + at);
        size_t total = 12 + (size_t)len;
        const uint8_t *type = b + at + 4;
        if (memcmp(type, "PLTE", 4) && memcmp(type, "tRNS", 4)) {
            memcpy(o + k, b + at, total);
            if (!memcmp(type, "IHDR", 4)) {
                o[k + 8 + 9] = 0; /* colour type byte */
                uint32_t crc = crc32_update(0, o + k + 4, 17);
                for (int i = 0; i < 4; i++) o[k + 21 + i] = (uint8_t)(crc >> (24 - 8 * i));
            }
            k += total;
        }
        if (!memcmp(type, "IEND", 4)) break;
        at += total;
    }
    *outp = o;
    *outn = k;
    return 0;
}

int mn_image_load_labels_max(const char *path, int64_t max_pixels, mn_image *out)
{
    memset(out, 0, sizeof *out);
    if (max_pixels <= 0) max_pixels = MN_IMAGE_DEFAULT_MAX_PIXELS;
    uint8_t *b;
    size_t n;
    int rc = read_whole(path, &b, &n);
    if (rc) return rc;
    enum fmt fmt;
    png_info png = {0};
    rc = check_container(path, b, n, max_pixels, &fmt, &png);
    if (!rc && fmt != FMT_PNG)
        rc = mn_error(MN_EFORMAT, "%s: label images must be PNG files (%s would not keep class indices exact)", path,
                      fmt == FMT_JPEG ? "JPEG is lossy and" : "this format");
    if (!rc && (png.color == 2 || png.color == 4 || png.color == 6)) {
        int nch = png.color == 2 ? 3 : png.color == 4 ? 2 : 4;
        rc = mn_error(MN_EFORMAT,
                      "%s: label PNG has %d channels (%s); expected an 8-bit single-channel PNG of class indices. "
                      "Save indices as a grey or palette PNG, or convert colour-coded labels to indices with a "
                      "colour map (one RGB colour per class)",
                      path, nch, png.color == 2 ? "RGB" : png.color == 4 ? "grey+alpha" : "RGBA");
    }
    if (!rc && png.depth > 8)
        rc = mn_error(MN_EFORMAT, "%s: label PNG has %d-bit samples; expected 8-bit class indices", path, png.depth);
    if (rc) {
        free(b);
        return rc;
    }
    if (png.color == 3) {
        uint8_t *g = NULL;
        size_t gn = 0;
        rc = palette_as_grey(path, b, n, &g, &gn);
        free(b);
        if (rc) return rc;
        b = g;
        n = gn;
    }
    rc = decode(path, b, n, 1, out);
    free(b);
    if (rc) return rc;
    if (png.depth < 8) {
        /* stb stretches grey samples of 1, 2 or 4 bits to 0..255; undo it to get the indices */
        int scale = 255 / ((1 << png.depth) - 1);
        size_t np = (size_t)out->w * (size_t)out->h;
        for (size_t i = 0; i < np; i++) out->data[i] = (uint8_t)(out->data[i] / scale);
    }
    return 0;
}

int mn_image_load_labels(const char *path, mn_image *out) { return mn_image_load_labels_max(path, 0, out); }

typedef struct write_ctx {
    FILE *f;
    bool ok;
} write_ctx;

static void write_cb(void *ctx, void *data, int size)
{
    write_ctx *w = ctx;
    if (w->ok && size > 0 && fwrite(data, 1, (size_t)size, w->f) != (size_t)size) w->ok = false;
}

int mn_image_save(const char *path, const mn_image *img, int quality)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    bool png = dot && !strcasecmp(dot, ".png");
    bool jpeg = dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
    if (!png && !jpeg)
        return mn_error(MN_EINVAL, "%s: unknown image extension (use .png, .jpg or .jpeg)", path);
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || img->c < 1 || img->c > 4)
        return mn_error(MN_EINVAL, "%s: cannot save an image of %dx%dx%d%s", path, img ? img->w : 0, img ? img->h : 0,
                        img ? img->c : 0, img && !img->data ? " without pixels" : "");
    if ((int64_t)img->w * img->c > INT_MAX / 2 || (jpeg && (img->w > 65535 || img->h > 65535)))
        return mn_error(MN_EINVAL, "%s: image of %dx%d is too large to save", path, img->w, img->h);
    if (jpeg && (quality < 1 || quality > 100))
        return mn_error(MN_EINVAL, "%s: JPEG quality %d outside 1..100", path, quality);

    mn_atomic_file a;
    int rc = mn_atomic_open(&a, path);
    if (rc) return rc;
    write_ctx ctx = {a.f, true};
    int encoded = png ? stbi_write_png_to_func(write_cb, &ctx, img->w, img->h, img->c, img->data, img->w * img->c)
                      : stbi_write_jpg_to_func(write_cb, &ctx, img->w, img->h, img->c, img->data, quality);
    rc = mn_atomic_commit(&a, encoded && ctx.ok);
    if (rc && !encoded) rc = mn_error(MN_ENOMEM, "%s: encoding failed (out of memory)", path);
    return rc;
}

int mn_image_alloc(mn_image *img, int w, int h, int c)
{
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0 || c < 1 || c > 4)
        return mn_error(MN_EINVAL, "image: cannot allocate %dx%dx%d (sizes must be positive, 1..4 channels)", w, h, c);
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    if (n / (size_t)w / (size_t)h != (size_t)c) return mn_error(MN_ENOMEM, "image: %dx%dx%d overflows", w, h, c);
    img->data = calloc(n, 1);
    if (!img->data) return mn_error(MN_ENOMEM, "image: out of memory for %dx%dx%d", w, h, c);
    img->w = w;
    img->h = h;
    img->c = c;
    return 0;
}

void mn_image_free(mn_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}
