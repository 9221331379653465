/* adapter_req.h: what every model adapter checks first in the provider-neutral request
 * (abi/crab_module_v1.h, crab_model_ops_v1.start) before mapping it to its provider's
 * body. jansson and libc. See README.md for how this code is shared. */
#ifndef CRAB_ADAPTER_REQ_H
#define CRAB_ADAPTER_REQ_H

#include <jansson.h>
#include <stddef.h>

/* The request parsed (the caller decrefs it): a JSON object with a messages array; its
 * model in *model (borrowed from it), else def_model (the configuration's). NULL with
 * the reason in err when it is none of that, or no model is named anywhere. */
json_t *adapter_req_parse(const char *req, size_t len, const char *def_model, const char **model,
    char *err, size_t errlen);

#endif
