/* adapter_req.c: the neutral request's first checks, adapter_req.h. */
#include <jansson.h>
#include <stdio.h>

#include "modules/common/adapter_req.h"

json_t *adapter_req_parse(const char *req, size_t len, const char *def_model, const char **model,
    char *err, size_t errlen)
{
	json_error_t e;
	json_t *in;

	if (errlen > 0)
		err[0] = '\0';
	if ((in = json_loadb(req, len, 0, &e)) == NULL || !json_is_object(in)) {
		snprintf(err, errlen, "the request is not a JSON object%s%s", in ? "" : ": ",
		    in ? "" : e.text);
		goto fail;
	}
	*model = json_string_value(json_object_get(in, "model"));
	if (*model == NULL || (*model)[0] == '\0')
		*model = def_model;
	if (*model == NULL || (*model)[0] == '\0') {
		snprintf(err, errlen, "no model: neither the request nor the configuration names one");
		goto fail;
	}
	if (!json_is_array(json_object_get(in, "messages"))) {
		snprintf(err, errlen, "the request has no messages array");
		goto fail;
	}
	return in;
fail:
	json_decref(in);
	return NULL;
}
