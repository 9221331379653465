// t/fakes/check-lib.mjs: what check-openai-client.mjs and check-anthropic-client.mjs share:
// the assertions, the fake's /_fake/* control calls, an expected SDK error, and running one
// named check as the process (exit 0 and "ok: ..." if it holds, else "FAILED ..." and 1).

export class CheckFailed extends Error {}

// check COND WHAT [GOT]: COND holds, else fails with WHAT (and GOT as JSON).
export function check(cond, what, got) {
	if (!cond) throw new CheckFailed(`${what}${got === undefined ? '' : `; got: ${JSON.stringify(got)}`}`);
}

// equal GOT WANT WHAT: the same as JSON.
export function equal(got, want, what) {
	const g = JSON.stringify(got), w = JSON.stringify(want);
	if (g !== w) throw new CheckFailed(`${what}: got ${g}, want ${w}`);
}

// controller BASE: control(METHOD, PATH [, BODY]) for the fake's /_fake/* on BASE (no /v1),
// which checks the answer is 2xx and returns its JSON.
export function controller(base) {
	return async function control(method, path, body) {
		const r = await fetch(`${base}${path}`, {
			method, headers: body ? { 'content-type': 'application/json' } : {},
			body: body ? JSON.stringify(body) : undefined,
		});
		check(r.ok, `${method} ${path} answered ${r.status}`);
		return r.json();
	};
}

// expectError FN CLASS WHAT BASE: FN rejects with an instance of CLASS and of the SDK's
// BASE (its APIError); the error.
export async function expectError(fn, cls, what, base) {
	let err = null;
	try { await fn(); } catch (e) { err = e; }
	check(err !== null, `${what}: no error was raised`);
	check(err instanceof cls, `${what}: raised ${err && err.constructor && err.constructor.name}, want ${cls.name}: ${err && err.message}`);
	check(err instanceof base, `${what}: not an APIError`);
	return err;
}

// runCheck SCRIPT CHECKS: runs the check named by argv[2] and exits as the scripts do.
export async function runCheck(script, checks) {
	const name = process.argv[2];
	if (!checks[name]) {
		console.error(`usage: ${script} ${Object.keys(checks).join('|')}`);
		process.exit(2);
	}
	try {
		await checks[name]();
	} catch (e) {
		console.log(`FAILED ${name}: ${e instanceof CheckFailed ? e.message : e.stack}`);
		process.exit(1);
	}
}
