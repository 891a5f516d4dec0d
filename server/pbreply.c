/* Protobuf packing for rpc replies, and the caller's deadline (see pbreply.h). */
#include "server/pbreply.h"

#include <stdlib.h>

#include "common/err.h"
#include "common/mtime.h"

int pb_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    *out = malloc(*len ? *len : 1);
    if (!*out) return MERR_NOMEM;
    protobuf_c_message_pack(m, *out);
    return 0;
}

void pb_reply(rpc_req *req, const ProtobufCMessage *m)
{
    uint8_t *buf;
    size_t len;
    if (pb_pack(m, &buf, &len)) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    rpc_reply(req, 0, NULL, buf, len);
    free(buf);
}

int64_t rpc_req_deadline_mono(const rpc_req *req)
{
    if (!req->deadline_us) return 0;
    int64_t left_ns = (req->deadline_us - mtime_real_ns() / 1000) * 1000;
    return mtime_mono_ns() + (left_ns > 0 ? left_ns : 0);
}
