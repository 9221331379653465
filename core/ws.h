/* ws.h: WebSocket (RFC 6455) on libevent bufferevents, both roles, plain or TLS.
 * libevent 2.1's evhttp cannot hand a connection over, so the public listener's HTTP
 * server (http_server.h) upgrades it here, and the CLI connects with crab_ws_connect.
 *
 * Three layers, each usable alone:
 * - the frame header parser and the message reassembly: pure functions on bytes (no
 *   sockets), what the fuzzer and the unit tests drive;
 * - the connection (struct crab_ws): whole messages in, whole messages out, ping/pong,
 *   the idle limit and the close handshake;
 * - the handshakes: crab_ws_accept (server, from an HTTP request) and crab_ws_connect
 *   (client, ws_client.c).
 *
 * No extensions (a frame with a reserved bit set is a protocol error) and no
 * subprotocol negotiation. */
#ifndef CRAB_WS_H
#define CRAB_WS_H

#include <event2/event.h>
#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct crab_http_request;
struct evbuffer;

/* Opcodes. */
#define CRAB_WS_CONT 0x0
#define CRAB_WS_TEXT 0x1
#define CRAB_WS_BINARY 0x2
#define CRAB_WS_CLOSE 0x8
#define CRAB_WS_PING 0x9
#define CRAB_WS_PONG 0xA

/* Close codes (RFC 6455 §7.4.1). 1005 and 1006 are only ever reported, never sent. */
#define CRAB_WS_NORMAL 1000
#define CRAB_WS_GOING_AWAY 1001
#define CRAB_WS_PROTOCOL_ERROR 1002
#define CRAB_WS_NO_STATUS 1005     /* the peer's close frame had no code */
#define CRAB_WS_ABNORMAL 1006      /* the connection ended without a close handshake */
#define CRAB_WS_INVALID_DATA 1007  /* text that is not UTF-8 */
#define CRAB_WS_TOO_BIG 1009
#define CRAB_WS_TLS_FAILED 1015    /* crab_ws_connect: the TLS handshake failed */

#define CRAB_WS_MAX_HEADER 14      /* 2 + 8 (64-bit length) + 4 (mask key) */
#define CRAB_WS_MAX_CONTROL 125
#define CRAB_WS_ACCEPT_LEN 29      /* 28 base64 characters and the NUL */

/* ---- frames and messages, without sockets ---- */

struct crab_ws_frame {
	int fin;
	int rsv;            /* the three reserved bits, as 0..7 */
	int opcode;
	int masked;
	unsigned char key[4];
	uint64_t len;       /* payload length */
};

/* Parses the frame header at the start of buf (n bytes) for a server (frames must be
 * masked) or a client (they must not be). Returns the header's length (2 to 14) with *f
 * filled; 0 when more bytes are needed; -1 with *code 1002 and *why (a static string)
 * for a header no frame may have, reported as soon as the bytes present show it:
 * reserved bits, an unknown opcode, a fragmented or longer than 125 bytes control
 * frame, the wrong masking, a 64-bit length with its top bit set. Non-minimal length
 * encodings are accepted. What depends on earlier frames is crab_ws_parser's. */
int crab_ws_parse_header(const unsigned char *buf, size_t n, int server,
    struct crab_ws_frame *f, int *code, const char **why);

/* Writes a frame header into out; key NULL: unmasked. Returns its length. */
size_t crab_ws_frame_header(unsigned char out[CRAB_WS_MAX_HEADER], int fin, int opcode,
    uint64_t len, const unsigned char *key);

/* XORs n payload bytes with key; offset is where buf starts within the payload (a
 * payload may be masked in pieces). Masking twice gives the bytes back. */
void crab_ws_mask(unsigned char *buf, size_t n, const unsigned char key[4], uint64_t offset);

/* Incremental UTF-8 validation (Unicode's well-formed sequences: no overlongs, no
 * surrogates, nothing above U+10FFFF). Start from a zeroed state; feed returns 0, or -1
 * at the first byte that no valid text can have. The text is whole and valid when every
 * feed returned 0 and state.need is 0 at its end. */
struct crab_ws_utf8 {
	unsigned char need;   /* continuation bytes still due */
	unsigned char lo, hi; /* the range of the next one */
};
int crab_ws_utf8_feed(struct crab_ws_utf8 *st, const unsigned char *s, size_t n);
/* The same on a whole text: 1 valid, 0 not (a truncated sequence included). */
int crab_ws_utf8_valid(const unsigned char *s, size_t n);

/* Reassembly: frames in, whole messages and control frames out. The fields are this
 * layer's; embed it, crab_ws_parser_init it, crab_ws_parser_release it. */
struct crab_ws_parser {
	int server;
	size_t max_message;
	int failed;           /* the code of the error that stopped it, or 0 */
	const char *why;
	unsigned char head[CRAB_WS_MAX_HEADER]; /* the header being gathered */
	size_t head_len;
	int in_payload;       /* frame: its header is read, its payload is coming */
	struct crab_ws_frame frame;
	uint64_t done;        /* payload bytes of frame read */
	int msg_opcode;       /* TEXT or BINARY while a message is being assembled, else 0 */
	int msg_ready;        /* msg was handed out: cleared at the next feed */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	struct crab_ws_utf8 utf8;
	unsigned char ctl[CRAB_WS_MAX_CONTROL + 1];
	size_t ctl_len;
};

/* An event of crab_ws_parser_feed: borrowed until the next feed or the release. */
struct crab_ws_event {
	int opcode;           /* TEXT or BINARY: a whole message; PING, PONG or CLOSE */
	const unsigned char *data; /* the payload, with a NUL after its len bytes */
	size_t len;
	int code;             /* CLOSE: the peer's code, or 1005 without one */
	const char *reason;   /* CLOSE: its reason, NUL-terminated, "" without one */
};

/* Whether a close code may be sent in a close frame (RFC 6455 §7.4): 1 or 0. */
int crab_ws_close_code_sendable(int code);

void crab_ws_parser_init(struct crab_ws_parser *p, int server, size_t max_message);
void crab_ws_parser_release(struct crab_ws_parser *p);
/* Consumes bytes of buf (n, any split) up to the end of the next message or control
 * frame: returns 1 with *ev; 0 when all of buf was taken without one being whole; -1
 * with *code and *why (static) on a protocol error: 1002 (see crab_ws_parse_header, and
 * a continuation without a message, a data frame inside a fragmented message, a close
 * frame of one byte or with a code not to be sent), 1009 (a message whose frames
 * declare more than max_message bytes, found on the header before its payload is read)
 * or 1007 (text, or a close reason, that is not UTF-8, found at the first bad byte).
 * *used is how many bytes were taken, in every case. Control frames may come between
 * the fragments of a message. After -1 the parser stays failed. */
int crab_ws_parser_feed(struct crab_ws_parser *p, const unsigned char *buf, size_t n,
    size_t *used, struct crab_ws_event *ev, int *code, const char **why);

/* ---- the connection ---- */

struct crab_ws;

/* 0 in a field takes its default; a negative timeout or interval turns it off. */
struct crab_ws_limits {
	size_t max_message;  /* bytes of a whole (reassembled) message; default 1 MiB */
	int idle_timeout_s;  /* a peer that sends nothing for this long is closed (1001);
			      * also bounds a stalled write and crab_ws_connect's handshake;
			      * default 60 */
	int ping_interval_s; /* a ping this often while open; default 20 */
};

/* Callbacks run on the loop, never from inside a crab_ws_* call, and may call anything
 * of this API on their ws: crab_ws_send, crab_ws_close, crab_ws_free. Borrowed until
 * the ws is gone. */
struct crab_ws_callbacks {
	/* crab_ws_connect only: the server accepted, sending works from now. Optional. */
	void (*on_open)(void *arg, struct crab_ws *ws);
	/* A whole message; data has a NUL after len bytes, borrowed until return. */
	void (*on_message)(void *arg, struct crab_ws *ws, int binary, const char *data,
	    size_t len);
	/* Exactly once, last, for every ws not freed by crab_ws_free: the socket is closed
	 * already and the layer frees ws when this returns (do not crab_ws_free it here).
	 * code: the code of the peer's close frame (1005 if it had none) when one came;
	 * else ours when we sent one (crab_ws_close, a protocol error, the idle limit);
	 * else 1006 (the connection dropped, a failed crab_ws_connect, 1015 for its TLS
	 * handshake). reason: NUL-terminated, maybe "", borrowed until return. */
	void (*on_close)(void *arg, struct crab_ws *ws, int code, const char *reason);
};

/* Takes over bev (a plain or bufferevent_openssl one, freed with the ws, with its
 * socket), past the HTTP handshake: bytes already in its input are frames, bytes in its
 * output go out first. Replaces bev's callbacks, timeouts and watermarks. server: 1 for
 * the server's role (frames in masked, out unmasked), 0 for a client's. limits NULL:
 * the defaults. Never NULL. */
struct crab_ws *crab_ws_new(struct event_base *base, struct bufferevent *bev, int server,
    const struct crab_ws_limits *limits, const struct crab_ws_callbacks *cb, void *arg);

/* Sends one message (binary 0: text, which must be UTF-8; checked, -1 if not). Queued
 * in the bufferevent; see crab_ws_backlog. 0, or -1 when not open (connecting, closing
 * or closed). */
int crab_ws_send(struct crab_ws *ws, int binary, const void *data, size_t len);
/* Starts the close handshake: a close frame with code (1000, 1001, ..., 3000-4999; 0:
 * a close without a code) and reason (may be NULL; cut to what fits 123 bytes), then
 * waits a few seconds for the peer's close before closing the socket; messages that
 * come meanwhile are dropped. On a ws still connecting it gives up the connection.
 * on_close follows, from the loop. 0, or -1 when already closing or code is not one
 * to send. */
int crab_ws_close(struct crab_ws *ws, int code, const char *reason);
/* Bytes queued and not yet written to the socket (back-pressure). */
size_t crab_ws_backlog(const struct crab_ws *ws);
/* The TLS connection, or NULL on a plain one (the peer's certificate, after on_open). */
SSL *crab_ws_ssl(struct crab_ws *ws);
/* Closes the socket and frees ws now, without a close frame and without on_close: the
 * owner is going away (shutdown). Safe from ws's own callbacks but on_close. NULL: no-op. */
void crab_ws_free(struct crab_ws *ws);

/* ---- the server's handshake ---- */

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
 * 0, or -1 when key is not 24 characters of base64 for 16 bytes. */
int crab_ws_accept_key(const char *client_key, char out[CRAB_WS_ACCEPT_LEN]);
/* Whether a header value, a comma-separated list (NULL: none), has token, compared
 * case-insensitively: "Connection: keep-alive, Upgrade" has "upgrade". 1 or 0. */
int crab_ws_has_token(const char *list, const char *token);
/* Whether req is a WebSocket opening handshake: a GET with "Upgrade: websocket",
 * "Connection" with the token "upgrade", "Sec-WebSocket-Version: 13" and a valid
 * Sec-WebSocket-Key (names, values and tokens case-insensitive but the key). 0, or -1
 * with *why (static, lowercase) saying what is wrong: the caller's 400. */
int crab_ws_check_upgrade(struct crab_http_request *req, const char **why);
/* Completes the handshake of req (see crab_http_request_upgrade: req is freed either
 * way, so read its fingerprint and headers first) and returns the server's ws on it.
 * A req that crab_ws_check_upgrade refuses is answered 400 with the JSON error (and
 * "Sec-WebSocket-Version: 13") and NULL returned; NULL too when the connection closed
 * meanwhile. */
struct crab_ws *crab_ws_accept(struct crab_http_request *req,
    const struct crab_ws_limits *limits, const struct crab_ws_callbacks *cb, void *arg);

/* ---- the client (ws_client.c) ---- */

/* Connects to url ("ws://host[:port]/path?query" or "wss://...", IPv6 as "[::1]"),
 * sends the opening handshake with a fresh random key and headers ("Name: value"
 * lines, NULL-terminated, may be NULL: "Authorization: Bearer ..."), and returns the ws
 * at once, connecting: on_open when the server's 101 and Sec-WebSocket-Accept check
 * out, else on_close with 1006 (1015: TLS) and the reason. The answer's head may be
 * 16 KiB; the whole handshake must end within limits->idle_timeout_s (default 60).
 * wss needs tls, a client SSL_CTX (the connection's SSL holds a reference of its
 * own): this layer sets SNI and nothing of verification, so a verify callback the
 * caller set on it (a pin) decides, and its refusal is on_close(1015). The host name is
 * resolved here, blocking, and only its first address is tried (fine for the CLI and
 * for addresses). NULL with err for a bad url, a header that is not one line, a name
 * that does not resolve, or wss without tls. */
struct crab_ws *crab_ws_connect(struct event_base *base, const char *url, SSL_CTX *tls,
    const char *const *headers, const struct crab_ws_limits *limits,
    const struct crab_ws_callbacks *cb, void *arg, char *err, size_t errlen);

/* Between ws.c and ws_client.c. crab_ws_new with a handshake still to come: the ws
 * stays connecting until crab_ws_read_answer has read the server's 101 for accept. */
struct crab_ws *crab_ws_new_connecting(struct event_base *base, struct bufferevent *bev,
    const char *accept, const struct crab_ws_limits *limits,
    const struct crab_ws_callbacks *cb, void *arg);
/* Reads the server's answer to the opening handshake from in: 1 when it is a good 101
 * for accept (its head drained from in: what follows is frames), 0 when more is needed,
 * -1 with one line in err (a refusal's status and body, within limits). */
int crab_ws_read_answer(struct evbuffer *in, const char *accept, char *err, size_t errlen);

#endif
