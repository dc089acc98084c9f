/* The ONNX writer of a build without protobuf-c or onnx.proto: export writes compact
 * checkpoints only, and says why when asked for ONNX. */
#include "export/internal.h"
#include "mn/export.h"

bool mn_export_has_onnx(void) { return false; }

int ex_onnx_write(const char *path, ex_graph *g, const int *inputs, int n_in, const int *outputs, int n_out,
                  bool dynamic_batch, const char *graph_name, const char *const *meta_keys,
                  const char *const *meta_values, int n_meta)
{
    return mn_error(MN_EINVAL, "%s: this build has no ONNX support", path);
}
