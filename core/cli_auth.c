/* cli_auth.c: `crab auth login|status|logout`, subscription logins over the admin socket
 * (core/auth.h). The gateway holds the PKCE secret and does every token request; this
 * side prints the URL or the device code and passes the pasted code on. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define CODE_MAX 4096

static void usage(FILE *f)
{
	fprintf(f, "usage: crab auth login PROVIDER [--code CODE#STATE | --print-url]"
		   " [--admin-socket PATH]\n"
		   "       crab auth status [--json] [--admin-socket PATH]\n"
		   "       crab auth logout PROVIDER [--admin-socket PATH]\n");
}

static void print_logged_in(const char *provider, json_t *r)
{
	json_t *ein = json_object_get(r, "expires_in");

	if (json_is_integer(ein))
		printf("logged in to %s (access token expires in %lld s)\n", provider,
		    (long long)json_integer_value(ein));
	else
		printf("logged in to %s\n", provider);
	if (json_is_false(json_object_get(r, "stored")))
		fprintf(stderr, "crab: warning: the gateway could not store the login: after a "
		    "restart it needs another login\n");
}

/* One line of stdin, without its end; NULL at end of input. */
static char *read_code(void)
{
	char *line = malloc(CODE_MAX + 2);
	size_t n;

	if (line == NULL || fgets(line, CODE_MAX + 2, stdin) == NULL) {
		free(line);
		return NULL;
	}
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static int send_code(const char *sock, const char *provider, const char *code)
{
	json_t *r = NULL;
	int rc;

	rc = crab_cli_call(sock, "auth.login", json_pack("{s:s, s:s}", "provider", provider,
	    "code", code), &r);
	if (rc == 0)
		print_logged_in(provider, r);
	json_decref(r);
	return rc;
}

static int login(const char *sock, const char *provider, const char *code, int print_url)
{
	const char *flow, *url;
	json_t *r = NULL, *w = NULL;
	char *line;
	int rc;

	if (code != NULL)
		return send_code(sock, provider, code);
	if ((rc = crab_cli_call(sock, "auth.login", json_pack("{s:s}", "provider", provider),
	    &r)) != 0)
		return rc;
	flow = json_string_value(json_object_get(r, "flow"));
	if (flow != NULL && strcmp(flow, "device") == 0) {
		const char *uri = json_string_value(json_object_get(r, "verification_uri"));
		const char *user = json_string_value(json_object_get(r, "user_code"));

		if (print_url) {
			printf("%s\n%s\n", uri ? uri : "", user ? user : "");
			json_decref(r);
			return 0;
		}
		printf("To log in to %s, open %s and enter the code %s\n", provider,
		    uri ? uri : "?", user ? user : "?");
		printf("(the code is good for %lld s; waiting for the login...)\n",
		    (long long)json_integer_value(json_object_get(r, "expires_in")));
		fflush(stdout);
		json_decref(r);
		rc = crab_cli_call(sock, "auth.login.wait", json_pack("{s:s}", "provider", provider),
		    &w);
		if (rc == 0)
			print_logged_in(provider, w);
		json_decref(w);
		return rc;
	}
	url = json_string_value(json_object_get(r, "url"));
	if (print_url) {
		printf("%s\n", url ? url : "");
		json_decref(r);
		return 0;
	}
	printf("To log in to %s, open this URL in a browser and log in:\n\n%s\n\n", provider,
	    url ? url : "?");
	printf("Then paste the code the page shows (CODE#STATE) here: ");
	fflush(stdout);
	json_decref(r);
	if ((line = read_code()) == NULL || line[0] == '\0') {
		fprintf(stderr, "\ncrab: no code given; the login was not completed\n");
		free(line);
		return 1;
	}
	rc = send_code(sock, provider, line);
	OPENSSL_cleanse(line, strlen(line));
	free(line);
	return rc;
}

static int status(const char *sock, int json)
{
	json_t *r = NULL, *p;
	size_t i;
	int rc;

	if ((rc = crab_cli_call(sock, "auth.status", NULL, &r)) != 0)
		return rc;
	if (json) {
		crab_cli_print_json(r);
	} else if (json_array_size(json_object_get(r, "providers")) == 0) {
		printf("no models: entry has auth: of kind oauth or token_exchange\n");
	} else {
		json_array_foreach(json_object_get(r, "providers"), i, p) {
			printf("%-20s %-15s %s\n", json_string_value(json_object_get(p, "provider")),
			    json_string_value(json_object_get(p, "kind")),
			    json_string_value(json_object_get(p, "message")));
		}
	}
	json_decref(r);
	return 0;
}

static int logout(const char *sock, const char *provider)
{
	json_t *r = NULL;
	int rc;

	if ((rc = crab_cli_call(sock, "auth.logout", json_pack("{s:s}", "provider", provider),
	    &r)) != 0)
		return rc;
	printf("logged out of %s%s\n", provider,
	    json_is_true(json_object_get(r, "revoked_at_provider")) ?
	    " (the refresh token was revoked at the provider)" : "");
	json_decref(r);
	return 0;
}

int crab_cli_auth_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"code", required_argument, NULL, 'c'},
		{"print-url", no_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"admin-socket", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argc > 1 ? argv[1] : "", *sock = NULL, *code = NULL;
	int ch, json = 0, print_url = 0;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': code = optarg; break;
		case 'p': print_url = 1; break;
		case 'j': json = 1; break;
		case 'S': sock = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	sock = crab_cli_admin_socket(sock);
	if (strcmp(cmd, "login") == 0 && optind == argc - 1 && !json && !(code && print_url))
		return login(sock, argv[optind], code, print_url);
	if (strcmp(cmd, "status") == 0 && optind == argc && !code && !print_url)
		return status(sock, json);
	if (strcmp(cmd, "logout") == 0 && optind == argc - 1 && !code && !print_url && !json)
		return logout(sock, argv[optind]);
	usage(stderr);
	return 2;
}
