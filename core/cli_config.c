/* cli_config.c: `crab config validate FILE`: loads FILE exactly as the gateway would,
 * and starts nothing. Prints every error and exits 1, or one "ok" line and exits 0. */
#include "config.h"

#include <stdio.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: crab config validate FILE\n");
	return 2;
}

int crab_cli_config_main(int argc, char **argv)
{
	struct crab_config *cfg;

	if (argc != 3 || strcmp(argv[1], "validate") != 0 || argv[2][0] == '-')
		return usage();
	if ((cfg = crab_config_load(argv[2], stderr)) == NULL)
		return 1;
	printf("%s: ok (%zu models, %zu agents, %zu tenants, %zu routes)\n", argv[2],
	    cfg->nmodels, cfg->nagents, cfg->ntenants, cfg->nroutes);
	crab_config_free(cfg);
	return 0;
}
