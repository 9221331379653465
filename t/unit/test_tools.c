/* test_tools.c: the names models see for tools (core/tools.c): dots as "__", other bytes
 * a provider refuses as '_', at most 64 bytes. */
#include "core/tools.h"
#include "unit.h"

int main(void)
{
	char out[65];
	char long_name[80];

	CHECK(crab_tool_model_name("memory.search", out) == 0 && strcmp(out, "memory__search") == 0,
	    "memory.search is memory__search");
	CHECK(crab_tool_model_name("config.apply", out) == 0 && strcmp(out, "config__apply") == 0,
	    "config.apply is config__apply");
	CHECK(crab_tool_model_name("a.b-c_d.E9", out) == 0 && strcmp(out, "a__b-c_d__E9") == 0,
	    "letters, digits, - and _ are kept, every dot doubled");
	CHECK(crab_tool_model_name("we ird/näme", out) == 0 &&
	    strspn(out, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
	    strlen(out), "anything else becomes '_'");
	memset(long_name, 'x', 64);
	long_name[64] = '\0';
	CHECK(crab_tool_model_name(long_name, out) == 0 && strlen(out) == 64, "64 bytes fit");
	long_name[62] = '.';
	CHECK(crab_tool_model_name(long_name, out) == -1, "65 once a dot is doubled: refused");
	CHECK(crab_tool_model_name("", out) == -1, "an empty name is refused");
	return unit_done();
}
