/* test_dmsd_compose.c - the compose-file parser (dms/compose/): a realistic file into the expected model,
 * every refused key with its exact path, interpolation, hostile YAML, depends_on order and the route rules,
 * and the scalar forms (ports, durations, sizes, CPUs, shell words); and examples/compose-app's own file. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "../../dms/compose/compose_priv.h"
#include "testutil.h"
#include "util.h"

static char *env_none[] = {NULL};

static int parse(const char *yaml, char *const *env, compose_file **out, dms_error *err)
{
    return compose_parse(yaml, strlen(yaml), env, out, err);
}

/* Parses yaml, which must succeed; the caller frees. */
static compose_file *parse_ok(const char *yaml, char *const *env)
{
    dms_error err = {0};
    compose_file *f = NULL;
    int r = parse(yaml, env, &f, &err);
    ck_assert_msg(r == 0, "parse failed: %s (field %s)\n%s", err.message, err.field, yaml);
    ck_assert_ptr_nonnull(f);
    return f;
}

/* Parses yaml, which must be refused with INVALID naming field; returns the message (static). */
static const char *parse_invalid(const char *yaml, char *const *env, const char *field)
{
    static dms_error err;
    compose_file *f = NULL;
    memset(&err, 0, sizeof(err));
    int r = parse(yaml, env, &f, &err);
    ck_assert_msg(r == -DMS_E_INVALID, "expected INVALID, got %d\n%s", r, yaml);
    ck_assert_ptr_null(f);
    ck_assert_msg(strcmp(err.field, field) == 0, "field \"%s\", expected \"%s\" (%s)\n%s", err.field, field,
                  err.message, yaml);
    return err.message;
}

static const char realistic[] = "name: shop\n"
                                "version: \"3.9\"\n"
                                "x-common: &common\n"
                                "  restart: unless-stopped\n"
                                "  environment:\n"
                                "    LOG_LEVEL: ${LOG_LEVEL:-info}\n"
                                "    TZ: UTC\n"
                                "x-limits: &limits\n"
                                "  deploy:\n"
                                "    resources:\n"
                                "      limits: {memory: 512m, cpus: \"0.5\"}\n"
                                "services:\n"
                                "  backend:\n"
                                "    <<: [*common, *limits]\n"
                                "    build:\n"
                                "      context: ./backend\n"
                                "      dockerfile: Dockerfile.prod\n"
                                "      args: [\"VERSION=${APP_VERSION}\", GIT_SHA]\n"
                                "    environment:\n"
                                "      DATABASE_URL: postgres://db/${DB_NAME:?set DB_NAME}\n"
                                "      SECRET_KEY:\n"
                                "    expose: [\"8000\"]\n"
                                "    healthcheck:\n"
                                "      test: [\"CMD\", \"curl\", \"-f\", \"http://localhost:8000/health\"]\n"
                                "      interval: 10s\n"
                                "      timeout: 1m30s\n"
                                "      retries: 3\n"
                                "      start_period: 500ms\n"
                                "    volumes:\n"
                                "      - data:/var/lib/app\n"
                                "      - ./config:/etc/app\n"
                                "  frontend:\n"
                                "    build: frontend\n"
                                "    image: shop/frontend:latest\n"
                                "    command: npm run build -- --out 'dist dir'\n"
                                "    depends_on: [backend]\n"
                                "  worker:\n"
                                "    <<: *common\n"
                                "    image: shop/worker\n"
                                "    command: [\"python\", \"-m\", \"worker\"]\n"
                                "    environment: [QUEUE=jobs, \"COST=5$$\"]\n"
                                "    depends_on:\n"
                                "      backend: {condition: service_healthy, restart: true}\n"
                                "    x-dms: {singleton: true}\n"
                                "    labels: {com.example.role: worker}\n"
                                "  caddy:\n"
                                "    image: caddy:2\n"
                                "    ports: [\"8080:80\", \"443:443/udp\"]\n"
                                "    volumes:\n"
                                "      - type: bind\n"
                                "        source: ./Caddyfile\n"
                                "        target: /etc/caddy/Caddyfile\n"
                                "    depends_on: [frontend, backend]\n"
                                "volumes:\n"
                                "  data:\n"
                                "x-dms:\n"
                                "  route: {service: caddy, port: 80}\n";

static char *realistic_env[] = {"APP_VERSION=1.2.3", "DB_NAME=shop", "GIT_SHA=abc123", "SECRET_KEY=hunter2",
                                NULL};

START_TEST(test_realistic_file_parses_into_the_expected_model)
{
    compose_file *f = parse_ok(realistic, realistic_env);
    ck_assert_uint_eq(f->n_services, 4);
    /* start order: backend first, then by name among the ready ones */
    ck_assert_str_eq(f->services[0].name, "backend");
    ck_assert_str_eq(f->services[1].name, "frontend");
    ck_assert_str_eq(f->services[2].name, "caddy");
    ck_assert_str_eq(f->services[3].name, "worker");
    ck_assert_int_eq(f->route_service, 2);
    ck_assert_int_eq(f->route_port, 80);

    const compose_service *b = compose_find(f, "backend");
    ck_assert_ptr_null(b->image);
    ck_assert_str_eq(b->build->context, "backend");
    ck_assert_str_eq(b->build->dockerfile, "Dockerfile.prod");
    ck_assert_str_eq(b->build->args[0], "VERSION=1.2.3");
    ck_assert_str_eq(b->build->args[1], "GIT_SHA=abc123");
    ck_assert_ptr_null(b->build->args[2]);
    /* the merged x-common's environment is replaced by the explicit one, as YAML merge keys do */
    ck_assert_str_eq(b->environment[0], "DATABASE_URL=postgres://db/shop");
    ck_assert_str_eq(b->environment[1], "SECRET_KEY=hunter2");
    ck_assert_ptr_null(b->environment[2]);
    ck_assert_int_eq(b->restart, COMPOSE_RESTART_UNLESS_STOPPED);
    ck_assert_int_eq(b->memory_bytes, 512LL * 1024 * 1024);
    ck_assert_int_eq(b->cpu_millis, 500);
    ck_assert_uint_eq(b->n_ports, 1);
    ck_assert_int_eq(b->ports[0].port, 8000);
    ck_assert_int_eq(b->healthcheck.kind, COMPOSE_HEALTH_CMD);
    ck_assert_str_eq(b->healthcheck.test[0], "curl");
    ck_assert_str_eq(b->healthcheck.test[2], "http://localhost:8000/health");
    ck_assert_ptr_null(b->healthcheck.test[3]);
    ck_assert_int_eq(b->healthcheck.interval_ms, 10000);
    ck_assert_int_eq(b->healthcheck.timeout_ms, 90000);
    ck_assert_int_eq(b->healthcheck.start_period_ms, 500);
    ck_assert_int_eq(b->healthcheck.retries, 3);
    ck_assert_uint_eq(b->n_volumes, 2);
    ck_assert_int_eq(b->volumes[0].type, COMPOSE_MOUNT_VOLUME);
    ck_assert_str_eq(b->volumes[0].source, "data");
    ck_assert_str_eq(b->volumes[0].target, "/var/lib/app");
    ck_assert(!b->volumes[0].read_only);
    ck_assert_int_eq(b->volumes[1].type, COMPOSE_MOUNT_BIND);
    ck_assert_str_eq(b->volumes[1].source, "config");
    ck_assert(b->volumes[1].read_only);

    const compose_service *fe = compose_find(f, "frontend");
    ck_assert_str_eq(fe->image, "shop/frontend:latest");
    ck_assert_str_eq(fe->build->context, "frontend");
    ck_assert_ptr_null(fe->build->dockerfile);
    const char *words[] = {"npm", "run", "build", "--", "--out", "dist dir"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(words); i++)
        ck_assert_str_eq(fe->command[i], words[i]);
    ck_assert_ptr_null(fe->command[DMS_ARRAY_SIZE(words)]);
    ck_assert_int_eq(fe->restart, COMPOSE_RESTART_NO);

    const compose_service *w = compose_find(f, "worker");
    ck_assert_str_eq(w->environment[0], "QUEUE=jobs");
    ck_assert_str_eq(w->environment[1], "COST=5$");
    ck_assert_int_eq(w->restart, COMPOSE_RESTART_UNLESS_STOPPED);
    ck_assert_uint_eq(w->n_depends_on, 1);
    ck_assert_int_eq(w->depends_on[0].condition, COMPOSE_COND_HEALTHY);
    ck_assert(w->depends_on[0].restart);
    ck_assert(w->depends_on[0].required);
    ck_assert(w->singleton);
    ck_assert_str_eq(w->labels[0], "com.example.role=worker");
    ck_assert_int_eq(w->memory_bytes, 0);

    const compose_service *c = compose_find(f, "caddy");
    ck_assert_uint_eq(c->n_ports, 2);
    ck_assert_int_eq(c->ports[0].port, 80);
    ck_assert_int_eq(c->ports[1].port, 443);
    ck_assert_int_eq(c->ports[1].proto, COMPOSE_PROTO_UDP);
    ck_assert_str_eq(c->volumes[0].source, "Caddyfile");
    ck_assert(c->volumes[0].read_only);
    ck_assert_str_eq(c->depends_on[0].service, "backend"); /* sorted by name */
    ck_assert_str_eq(c->depends_on[1].service, "frontend");

    ck_assert_uint_eq(f->n_volumes, 1);
    ck_assert_str_eq(f->volumes[0].name, "data");
    compose_file_free(f);
}
END_TEST

START_TEST(test_file_without_any_secret_in_an_error_message)
{
    /* DB_NAME is set, but restart gets a secret's value: the message names the path, not the value */
    char *env[] = {"DB_NAME=x", "POLICY=s3cr3t-value", NULL};
    const char *msg =
        parse_invalid("services:\n  a:\n    image: x\n    restart: ${POLICY}\n    expose: [80]\n", env,
                      "services.a.restart");
    ck_assert_msg(!strstr(msg, "s3cr3t"), "%s", msg);
    msg = parse_invalid("services:\n  a:\n    image: x\n    ports: [\"${POLICY}\"]\n", env,
                        "services.a.ports[0]");
    ck_assert_msg(!strstr(msg, "s3cr3t"), "%s", msg);
    msg =
        parse_invalid("services:\n  a:\n    image: x\n    user: ${POLICY:?}\n", env_none, "services.a.user");
    ck_assert_msg(strstr(msg, "POLICY"), "%s", msg);
}
END_TEST

/* One refused input per row, with the path its error must name. */
static const struct {
    const char *yaml;
    const char *field;
} refused[] = {
    {"services:\n  web:\n    image: x\n    network_mode: host\n", "services.web.network_mode"},
    {"services:\n  web:\n    image: x\n    privileged: true\n", "services.web.privileged"},
    {"services:\n  web:\n    image: x\n    container_name: y\n", "services.web.container_name"},
    {"services:\n  web:\n    image: x\n    cap_add: [ALL]\n", "services.web.cap_add"},
    {"services:\n  web:\n    image: x\nnetworks:\n  n: {}\n", "networks"},
    {"services:\n  web:\n    image: x\nsecrets: {}\n", "secrets"},
    {"services:\n  web:\n    image: x\nconfigs: {}\n", "configs"},
    {"include: [a.yaml]\nservices:\n  web:\n    image: x\n", "include"},
    {"services:\n  web:\n    image: x\n    build: {context: ., dockerfile_inline: FROM x}\n",
     "services.web.build.dockerfile_inline"},
    {"services:\n  web:\n    build: /srv/app\n", "services.web.build"},
    {"services:\n  web:\n    build: ../other\n", "services.web.build"},
    {"services:\n  web:\n    build: https://github.com/x/y.git\n", "services.web.build"},
    {"services:\n  web:\n    build: {context: app, dockerfile: ../../etc/passwd}\n",
     "services.web.build.dockerfile"},
    {"services:\n  web:\n    restart: always\n", "services.web"},
    {"services:\n  Web:\n    image: x\n", "services.Web"},
    {"services:\n  web.app:\n    image: x\n", "services.web.app"},
    {"services: {}\n", "services"},
    {"name: x\n", "services"},
    {"services:\n  web:\n    image: x\n    volumes: [/etc:/etc]\n", "services.web.volumes[0]"},
    {"services:\n  web:\n    image: x\n    volumes: [\"./data:/data:rw\"]\n", "services.web.volumes[0]"},
    {"services:\n  web:\n    image: x\n    volumes: [\"undeclared:/data\"]\n", "services.web.volumes[0]"},
    {"services:\n  web:\n    image: x\n    volumes: [/data]\n", "services.web.volumes[0]"},
    {"services:\n  web:\n    image: x\n    volumes: [{type: tmpfs, target: /t}]\n",
     "services.web.volumes[0].type"},
    {"services:\n  web:\n    image: x\n    volumes: [{type: bind, source: /, target: /t}]\n",
     "services.web.volumes[0].source"},
    {"services:\n  web:\n    image: x\n    volumes: [{type: bind, source: ./a, target: /t, read_only: "
     "false}]\n",
     "services.web.volumes[0].read_only"},
    {"services:\n  web:\n    image: x\n    volumes: [{type: volume, source: v, target: /t, volume: {nocopy: "
     "true}}]\n"
     "volumes: {v: }\n",
     "services.web.volumes[0].volume"},
    {"services:\n  web:\n    image: x\nvolumes:\n  v: {driver: local}\n", "volumes.v.driver"},
    {"services:\n  web:\n    image: x\nvolumes:\n  v: {external: true}\n", "volumes.v.external"},
    {"services:\n  web:\n    image: x\nvolumes:\n  v: {driver_opts: {}}\n", "volumes.v.driver_opts"},
    {"services:\n  web:\n    image: x\n    labels: {io.dms.owner: me}\n", "services.web.labels.io.dms.owner"},
    {"services:\n  web:\n    image: x\n    labels: [io.dms.x=1]\n", "services.web.labels[0]"},
    {"services:\n  web:\n    image: x\n    labels: {dms.droid: d0123456789ab}\n",
     "services.web.labels.dms.droid"},
    {"services:\n  web:\n    image: x\n    deploy: {replicas: 2}\n", "services.web.deploy.replicas"},
    {"services:\n  web:\n    image: x\n    deploy: {resources: {reservations: {memory: 1g}}}\n",
     "services.web.deploy.resources.reservations"},
    {"services:\n  web:\n    image: x\n    deploy: {resources: {limits: {pids: 10}}}\n",
     "services.web.deploy.resources.limits.pids"},
    {"services:\n  web:\n    image: x\n    deploy: {mode: global}\n", "services.web.deploy.mode"},
    {"services:\n  web:\n    image: x\n    restart: sometimes\n", "services.web.restart"},
    {"services:\n  web:\n    image: x\n    healthcheck: {test: [\"FOO\"]}\n",
     "services.web.healthcheck.test"},
    {"services:\n  web:\n    image: x\n    healthcheck: {interval: 10}\n",
     "services.web.healthcheck.interval"},
    {"services:\n  web:\n    image: x\n    healthcheck: {retries: -1}\n", "services.web.healthcheck.retries"},
    {"services:\n  web:\n    image: x\n    healthcheck: {test: true, foo: 1}\n",
     "services.web.healthcheck.foo"},
    {"services:\n  web:\n    image: x\n    ports: [\"8000-8010:8000-8010\"]\n", "services.web.ports[0]"},
    {"services:\n  web:\n    image: x\n    ports: [\"80/sctp\"]\n", "services.web.ports[0]"},
    {"services:\n  web:\n    image: x\n    ports: [{published: 80}]\n", "services.web.ports[0].target"},
    {"services:\n  web:\n    image: x\n    expose: [{target: 80}]\n", "services.web.expose[0]"},
    {"services:\n  web:\n    image: x\n    depends_on: [db]\n", "services.web.depends_on"},
    {"services:\n  web:\n    image: x\n    depends_on: {db: {condition: service_ready}}\n",
     "services.web.depends_on.db.condition"},
    {"services:\n  web:\n    image: x\n    env_file: /etc/env\n", "services.web.env_file"},
    {"services:\n  web:\n    image: x\n    env_file: [{path: ../x}]\n", "services.web.env_file[0].path"},
    {"services:\n  web:\n    image: x\n    environment: {A: [1]}\n", "services.web.environment.A"},
    {"services:\n  web:\n    image: x\n    environment: \"A=1\"\n", "services.web.environment"},
    {"services:\n  web:\n    image: x\n    working_dir: app\n", "services.web.working_dir"},
    {"services:\n  web:\n    image: x\n    command: \"echo 'unterminated\"\n", "services.web.command"},
    {"services:\n  web:\n    image: x\n    command: {a: 1}\n", "services.web.command"},
    {"services:\n  web:\n    image: x\n    x-dms: {replicas: 2}\n", "services.web.x-dms.replicas"},
    {"services:\n  web:\n    image: x\n    expose: [80]\nx-dms: {router: caddy}\n", "x-dms.router"},
    {"services:\n  web:\n    image: !reset x\n", "services.web.image"},
    {"services:\n  web:\n    image: x\n    expose: [80]\n    labels:\n      ? [a]\n      : b\n",
     "services.web.labels"},
    {"services:\n  web:\n    image: x\n    expose: [80]\n    <<: 1\n", "services.web.<<"},
    {"services:\n  web:\n    image: *nowhere\n", "services.web.image"},
};

START_TEST(test_each_refused_key_is_named_by_its_path)
{
    parse_invalid(refused[_i].yaml, env_none, refused[_i].field);
}
END_TEST

/* Interpolation: one input and env per row, and the value it gives. */
static const struct {
    const char *in;
    const char *out;
} interpolated[] = {
    {"plain", "plain"},
    {"$A", "a"},
    {"${A}", "a"},
    {"x${A}y$A.z", "xay"
                   "a.z"},
    {"${UNSET}", ""},
    {"$UNSET-x", "-x"},
    {"${UNSET:-def}", "def"},
    {"${EMPTY:-def}", "def"},
    {"${EMPTY-def}", ""},
    {"${UNSET-def}", "def"},
    {"${A:-def}", "a"},
    {"${A:+alt}", "alt"},
    {"${EMPTY:+alt}", ""},
    {"${EMPTY+alt}", "alt"},
    {"${UNSET:-${A}-${B:-b}}", "a-b"},
    {"$$A", "$A"},
    {"$${A}", "${A}"},
    {"5$", "5$"},
    {"$ 1", "$ 1"},
    {"${A:?must be set}", "a"},
};

static char *interp_env[] = {"A=a", "EMPTY=", NULL};

START_TEST(test_interpolation_forms_give_the_expected_value)
{
    dms_error err = {0};
    char *out = NULL;
    int r = compose_interp_string(interpolated[_i].in, interp_env, "services.a.image", &out, &err);
    ck_assert_msg(r == 0, "%s: %s", interpolated[_i].in, err.message);
    ck_assert_msg(strcmp(out, interpolated[_i].out) == 0, "%s gave \"%s\", expected \"%s\"",
                  interpolated[_i].in, out, interpolated[_i].out);
    free(out);
}
END_TEST

START_TEST(test_interpolation_errors_name_the_variable_and_the_path)
{
    const char *msg;
    msg =
        parse_invalid("services:\n  web:\n    image: x\n    environment: {DB: \"${DB:?set the database}\"}\n",
                      interp_env, "services.web.environment.DB");
    ck_assert_msg(strstr(msg, "DB") && strstr(msg, "set the database"), "%s", msg);
    msg = parse_invalid("services:\n  web:\n    image: x\n    user: \"${EMPTY:?}\"\n", interp_env,
                        "services.web.user");
    ck_assert_msg(strstr(msg, "EMPTY"), "%s", msg);
    compose_file *g =
        parse_ok("services:\n  web:\n    image: \"x${EMPTY?}\"\n    expose: [80]\n", interp_env);
    compose_file_free(g); /* set but empty is enough for ? */
    parse_invalid("services:\n  web:\n    image: \"x${UNSET?}\"\n", interp_env, "services.web.image");
    parse_invalid("services:\n  web:\n    image: \"${A\"\n", interp_env, "services.web.image");
    parse_invalid("services:\n  web:\n    image: \"${}\"\n", interp_env, "services.web.image");
    parse_invalid("services:\n  web:\n    image: \"${A!x}\"\n", interp_env, "services.web.image");
    parse_invalid("services:\n  web:\n    image: \"${1A}\"\n", interp_env, "services.web.image");
    /* keys are not interpolated; ignored extensions are not either */
    compose_file *f = parse_ok("x-notes: \"${broken\"\nservices:\n  web:\n    image: x\n    expose: [80]\n"
                               "    environment: {\"$A\": \"$A\"}\n",
                               interp_env);
    ck_assert_str_eq(f->services[0].environment[0], "$A=a");
    compose_file_free(f);
}
END_TEST

START_TEST(test_interpolation_output_is_bounded)
{
    /* 100 copies of an 8000-byte value: far beyond COMPOSE_STRING_MAX */
    char *big = malloc(8001 + 2);
    memset(big, 'v', 8000);
    big[8000] = '\0';
    char *kv = dmsu_strdup_printf("BIG=%s", big);
    char *env[] = {kv, NULL};
    dms_error err = {0};
    char *out = NULL;
    ck_assert_int_eq(compose_interp_string("${BIG}${BIG}", env, "services.a.image", &out, &err),
                     -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "services.a.image");
    ck_assert_ptr_null(out);
    ck_assert_msg(!strstr(err.message, "vvvv"), "%s", err.message);
    free(kv);
    free(big);
}
END_TEST

START_TEST(test_alias_bomb_is_refused_within_the_node_budget)
{
    /* nine levels of nine aliases: 9^9 nodes if expanded */
    dmsu_buf b = {0};
    dmsu_buf_printf(&b,
                    "x-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (int c = 'b'; c <= 'i'; c++)
        dmsu_buf_printf(&b, "x-%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1, c - 1,
                        c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    dmsu_buf_printf(&b, "services:\n  web:\n    image: x\n    x-bomb: *i\n");
    dms_error err = {0};
    compose_file *f = NULL;
    ck_assert_int_eq(compose_parse(b.data, b.len, env_none, &f, &err), -DMS_E_INVALID);
    ck_assert_msg(strstr(err.message, "20000"), "%s", err.message);
    dmsu_buf_free(&b);
}
END_TEST

START_TEST(test_oversized_and_too_deep_files_are_refused)
{
    size_t n = COMPOSE_FILE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    dms_error err = {0};
    compose_file *f = NULL;
    ck_assert_int_eq(compose_parse(big, n, env_none, &f, &err), -DMS_E_INVALID);
    ck_assert_msg(strstr(err.message, "bytes"), "%s", err.message);
    free(big);
    dmsu_buf b = {0};
    dmsu_buf_printf(&b, "services:\n  web:\n    image: x\n    x-deep: ");
    for (int i = 0; i < 40; i++)
        dmsu_buf_printf(&b, "[");
    for (int i = 0; i < 40; i++)
        dmsu_buf_printf(&b, "]");
    dmsu_buf_printf(&b, "\n");
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(compose_parse(b.data, b.len, env_none, &f, &err), -DMS_E_INVALID);
    ck_assert_msg(strstr(err.message, "deeper"), "%s", err.message);
    dmsu_buf_free(&b);
}
END_TEST

START_TEST(test_yaml_syntax_error_has_line_and_column)
{
    const char *msg = parse_invalid("services:\n  web:\n    image: [x\n", env_none, "");
    ck_assert_msg(strstr(msg, "line ") && strstr(msg, "column "), "%s", msg);
    msg = parse_invalid("services:\n  web:\n    image: x\n    image: y\n", env_none, "");
    ck_assert_msg(strstr(msg, "line 4, column 5") && strstr(msg, "duplicate"), "%s", msg);
    parse_invalid("", env_none, "services");
    parse_invalid("- a\n- b\n", env_none, "");
}
END_TEST

START_TEST(test_merge_keys_let_explicit_keys_and_earlier_sources_win)
{
    compose_file *f = parse_ok("x-a: &a {image: a, user: ua, working_dir: /a}\n"
                               "x-b: &b {image: b, user: ub, restart: always}\n"
                               "services:\n  web:\n    user: mine\n    <<: [*a, *b]\n    expose: [80]\n",
                               env_none);
    const compose_service *s = &f->services[0];
    ck_assert_str_eq(s->user, "mine");
    ck_assert_str_eq(s->image, "a");
    ck_assert_str_eq(s->working_dir, "/a");
    ck_assert_int_eq(s->restart, COMPOSE_RESTART_ALWAYS);
    compose_file_free(f);
}
END_TEST

START_TEST(test_depends_on_cycle_and_unknown_service_are_refused_naming_them)
{
    const char *msg = parse_invalid("services:\n"
                                    "  a: {image: x, depends_on: [b], expose: [80]}\n"
                                    "  b: {image: x, depends_on: [c]}\n"
                                    "  c: {image: x, depends_on: {a: {condition: service_healthy}}}\n"
                                    "  d: {image: x}\n",
                                    env_none, "services.a.depends_on");
    ck_assert_msg(strstr(msg, "a -> b -> c -> a"), "%s", msg);
    msg = parse_invalid("services:\n  a: {image: x, depends_on: [a], expose: [80]}\n", env_none,
                        "services.a.depends_on");
    ck_assert_msg(strstr(msg, "a -> a"), "%s", msg);
    msg = parse_invalid("services:\n  a: {image: x, depends_on: [db], expose: [80]}\n", env_none,
                        "services.a.depends_on");
    ck_assert_msg(strstr(msg, "db"), "%s", msg);
    parse_invalid("services:\n  a: {image: x, depends_on: [b, b], expose: [80]}\n  b: {image: x}\n", env_none,
                  "services.a.depends_on[1]");
}
END_TEST

START_TEST(test_start_order_follows_depends_on_stably_by_name)
{
    compose_file *f =
        parse_ok("services:\n"
                 "  web: {image: x, depends_on: [api, cache], expose: [80]}\n"
                 "  api: {image: x, depends_on: [db]}\n"
                 "  zeta: {image: x}\n"
                 "  db: {image: x}\n"
                 "  cache: {image: x}\n"
                 "  batch: {image: x, depends_on: {db: {condition: service_completed_successfully}}}\n",
                 env_none);
    const char *order[] = {"cache", "db", "api", "batch", "web", "zeta"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(order); i++)
        ck_assert_str_eq(f->services[i].name, order[i]);
    ck_assert_int_eq(f->route_service, 4);
    ck_assert_int_eq(f->services[3].depends_on[0].condition, COMPOSE_COND_COMPLETED);
    compose_file_free(f);
}
END_TEST

START_TEST(test_route_rules)
{
    compose_file *f;
    /* the only service with ports, on its only port */
    f = parse_ok("services:\n  web: {image: x, ports: [\"8080:3000\"]}\n  worker: {image: y}\n", env_none);
    ck_assert_int_eq(f->route_service, 1 - 1 + (strcmp(f->services[0].name, "web") == 0 ? 0 : 1));
    ck_assert_str_eq(f->services[f->route_service].name, "web");
    ck_assert_int_eq(f->route_port, 3000);
    compose_file_free(f);
    /* several ports: ask for the port */
    parse_invalid("services:\n  web: {image: x, expose: [80, 81]}\n", env_none, "x-dms.route.port");
    /* x-dms.route picks the service and, among several, the port */
    f = parse_ok("services:\n  web: {image: x, expose: [80, 81]}\n  api: {image: y, expose: [9000]}\n"
                 "x-dms:\n  route: {service: web, port: 81}\n",
                 env_none);
    ck_assert_str_eq(f->services[f->route_service].name, "web");
    ck_assert_int_eq(f->route_port, 81);
    compose_file_free(f);
    /* a service without ports may be routed when the port is given */
    f = parse_ok("services:\n  web: {image: x}\nx-dms: {route: {service: web, port: 8080}}\n", env_none);
    ck_assert_int_eq(f->route_port, 8080);
    compose_file_free(f);
    /* several services with ports, or none: ask for x-dms.route */
    const char *msg =
        parse_invalid("services:\n  web: {image: x, expose: [80]}\n  api: {image: y, expose: [90]}\n",
                      env_none, "x-dms.route");
    ck_assert_msg(strstr(msg, "api, web"), "%s", msg);
    parse_invalid("services:\n  worker: {image: x}\n", env_none, "x-dms.route");
    parse_invalid("services:\n  web: {image: x}\nx-dms: {route: {service: nope}}\n", env_none,
                  "x-dms.route.service");
    parse_invalid("services:\n  web: {image: x}\nx-dms: {route: {service: web}}\n", env_none,
                  "x-dms.route.port");
    parse_invalid("services:\n  web: {image: x}\nx-dms: {route: {service: web, port: 70000}}\n", env_none,
                  "x-dms.route.port");
    parse_invalid("services:\n  web: {image: x, expose: [\"53/udp\"]}\n", env_none, "x-dms.route.port");
    /* workers only, said explicitly */
    f = parse_ok("services:\n  worker: {image: x}\nx-dms: {route: false}\n", env_none);
    ck_assert_int_eq(f->route_service, -1);
    compose_file_free(f);
}
END_TEST

START_TEST(test_port_forms_keep_the_container_side)
{
    static const struct {
        const char *in;
        int port;
        compose_proto proto;
    } ok[] = {{"80", 80, COMPOSE_PROTO_TCP},
              {"8080:80", 80, COMPOSE_PROTO_TCP},
              {"127.0.0.1:8080:80/tcp", 80, COMPOSE_PROTO_TCP},
              {"[::1]:8080:80", 80, COMPOSE_PROTO_TCP},
              {"53/udp", 53, COMPOSE_PROTO_UDP},
              {"65535", 65535, COMPOSE_PROTO_TCP}};
    static const char *const bad[] = {
        "", "0", "65536", "80/sctp", "http", "80:", "1-2", "-1", "99999999999999999999"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(ok); i++) {
        compose_port p;
        dms_error err = {0};
        ck_assert_msg(compose_parse_port(ok[i].in, "p", &p, &err) == 0, "%s: %s", ok[i].in, err.message);
        ck_assert_int_eq(p.port, ok[i].port);
        ck_assert_int_eq(p.proto, ok[i].proto);
    }
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        compose_port p;
        dms_error err = {0};
        ck_assert_msg(compose_parse_port(bad[i], "p", &p, &err) == -DMS_E_INVALID, "%s accepted", bad[i]);
        ck_assert_str_eq(err.field, "p");
    }
    compose_file *f = parse_ok("services:\n  web:\n    image: x\n    ports: [80, \"9000:80\", {target: 81, "
                               "published: 8081, protocol: udp}]\n    expose: [\"80\"]\n"
                               "x-dms: {route: {service: web, port: 80}}\n",
                               env_none);
    ck_assert_uint_eq(f->services[0].n_ports, 2); /* 80/tcp once, 81/udp */
    ck_assert_int_eq(f->services[0].ports[1].port, 81);
    ck_assert_int_eq(f->services[0].ports[1].proto, COMPOSE_PROTO_UDP);
    compose_file_free(f);
}
END_TEST

START_TEST(test_duration_forms)
{
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {{"10s", 10000},          {"1m30s", 90000}, {"500ms", 500}, {"1h", 3600000},
              {"1h5m30s2ms", 3930002}, {"1500us", 1},    {"0s", 0},      {"24h", 86400000}};
    static const char *const bad[] = {
        "", "10", "s", "1x", "1.5s", "-1s", "25h", "1s ", "99999999999999999999h"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(ok); i++) {
        int64_t v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_duration_ms(ok[i].in, "d", &v, &err) == 0, "%s: %s", ok[i].in,
                      err.message);
        ck_assert_msg(v == ok[i].ms, "%s gave %lld", ok[i].in, (long long)v);
    }
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        int64_t v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_duration_ms(bad[i], "d", &v, &err) == -DMS_E_INVALID, "%s accepted",
                      bad[i]);
    }
}
END_TEST

START_TEST(test_memory_and_cpu_forms)
{
    static const struct {
        const char *in;
        int64_t bytes;
    } ok[] = {{"512m", 512LL << 20}, {"1g", 1LL << 30},      {"1.5G", 3LL << 29}, {"1073741824", 1073741824},
              {"100k", 102400},      {"512mb", 512LL << 20}, {"64KB", 65536},     {"10b", 10}};
    static const char *const bad[] = {"",   "0", "m", "1.g", "1t", "-1m", "1 g", "99999999999999999999g",
                                      ".5g"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(ok); i++) {
        int64_t v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_bytes(ok[i].in, "m", &v, &err) == 0, "%s: %s", ok[i].in, err.message);
        ck_assert_msg(v == ok[i].bytes, "%s gave %lld", ok[i].in, (long long)v);
    }
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        int64_t v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_bytes(bad[i], "m", &v, &err) == -DMS_E_INVALID, "%s accepted", bad[i]);
    }
    static const struct {
        const char *in;
        int millis;
    } cpus[] = {{"0.5", 500}, {"2", 2000}, {"0.25", 250}, {"1.125", 1125}, {"0.001", 1}};
    static const char *const bad_cpus[] = {"0", "0.0", "0.0001", "-1", "1e3", "2000", "", "."};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cpus); i++) {
        int v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_cpus_millis(cpus[i].in, "c", &v, &err) == 0, "%s: %s", cpus[i].in,
                      err.message);
        ck_assert_int_eq(v, cpus[i].millis);
    }
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad_cpus); i++) {
        int v;
        dms_error err = {0};
        ck_assert_msg(compose_parse_cpus_millis(bad_cpus[i], "c", &v, &err) == -DMS_E_INVALID, "%s accepted",
                      bad_cpus[i]);
    }
}
END_TEST

START_TEST(test_shell_words_split_like_a_shell_without_expansion)
{
    static const struct {
        const char *in;
        const char *words[6];
    } rows[] = {
        {"echo hello", {"echo", "hello"}},
        {"  a   b\tc\n", {"a", "b", "c"}},
        {"sh -c 'echo $HOME; exit 1'", {"sh", "-c", "echo $HOME; exit 1"}},
        {"say \"a \\\"quoted\\\" word\"", {"say", "a \"quoted\" word"}},
        {"\"a\\b\" 'c\\d'", {"a\\b", "c\\d"}},
        {"a\\ b c", {"a b", "c"}},
        {"x'y'\"z\"", {"xyz"}},
        {"''", {""}},
        {"", {NULL}},
        {"a \\\nb", {"a", "b"}},
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(rows); i++) {
        char **v = NULL;
        dms_error err = {0};
        ck_assert_msg(compose_split_words(rows[i].in, "cmd", &v, &err) == 0, "%s: %s", rows[i].in,
                      err.message);
        size_t n = 0;
        while (rows[i].words[n])
            n++;
        ck_assert_msg(dmsu_strv_len(v) == n, "%s: %zu words, expected %zu", rows[i].in, dmsu_strv_len(v), n);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(strcmp(v[j], rows[i].words[j]) == 0, "%s: word %zu is \"%s\", expected \"%s\"",
                          rows[i].in, j, v[j], rows[i].words[j]);
        dmsu_strv_free(v);
    }
    char **v = NULL;
    dms_error err = {0};
    ck_assert_int_eq(compose_split_words("say \"open", "cmd", &v, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "cmd");
}
END_TEST

START_TEST(test_healthcheck_forms)
{
    compose_file *f =
        parse_ok("services:\n"
                 "  a: {image: x, expose: [80], healthcheck: {test: \"curl -f localhost || exit 1\"}}\n"
                 "  b: {image: x, healthcheck: {test: [CMD-SHELL, \"pg_isready\"], start_interval: 1s}}\n"
                 "  c: {image: x, healthcheck: {test: [NONE]}}\n"
                 "  d: {image: x, healthcheck: {test: [CMD, true], disable: true}}\n"
                 "  e: {image: x, healthcheck: {interval: 1m}}\n",
                 env_none);
    ck_assert_int_eq(f->services[0].healthcheck.kind, COMPOSE_HEALTH_SHELL);
    ck_assert_str_eq(f->services[0].healthcheck.test[0], "curl -f localhost || exit 1");
    ck_assert_ptr_null(f->services[0].healthcheck.test[1]);
    ck_assert_int_eq(f->services[1].healthcheck.kind, COMPOSE_HEALTH_SHELL);
    ck_assert_str_eq(f->services[1].healthcheck.test[0], "pg_isready");
    ck_assert_int_eq(f->services[1].healthcheck.start_interval_ms, 1000);
    ck_assert_int_eq(f->services[2].healthcheck.kind, COMPOSE_HEALTH_DISABLED);
    ck_assert_int_eq(f->services[3].healthcheck.kind, COMPOSE_HEALTH_DISABLED);
    ck_assert_ptr_null(f->services[3].healthcheck.test);
    ck_assert_int_eq(f->services[4].healthcheck.kind, COMPOSE_HEALTH_IMAGE);
    ck_assert_int_eq(f->services[4].healthcheck.interval_ms, 60000);
    compose_file_free(f);
}
END_TEST

START_TEST(test_environment_takes_bare_and_null_keys_from_the_droid_env)
{
    char *env[] = {"TOKEN=t0k", "EMPTY=", NULL};
    compose_file *f =
        parse_ok("services:\n  a:\n    image: x\n    expose: [80]\n"
                 "    environment: [TOKEN, MISSING, EMPTY, \"B=1=2\", C=]\n"
                 "  b:\n    image: x\n    environment: {TOKEN: null, N: 3, T: true, MISSING: }\n",
                 env);
    char **a = f->services[0].environment, **b = f->services[1].environment;
    ck_assert_str_eq(a[0], "TOKEN=t0k");
    ck_assert_str_eq(a[1], "EMPTY=");
    ck_assert_str_eq(a[2], "B=1=2");
    ck_assert_str_eq(a[3], "C=");
    ck_assert_ptr_null(a[4]);
    ck_assert_str_eq(b[0], "TOKEN=t0k");
    ck_assert_str_eq(b[1], "N=3");
    ck_assert_str_eq(b[2], "T=true");
    ck_assert_ptr_null(b[3]);
    compose_file_free(f);
}
END_TEST

START_TEST(test_repo_paths_are_normalised_and_kept_inside)
{
    static const struct {
        const char *in, *out;
    } ok[] = {{".", "."}, {"./", "."}, {"", "."}, {"./a//b/./c/", "a/b/c"}, {"a..b", "a..b"}};
    static const char *const bad[] = {
        "/abs", "~/x", "..", "a/../b", "a/..", "http://x/y", "git@github.com:x/y"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(ok); i++) {
        char *out = NULL;
        dms_error err = {0};
        ck_assert_msg(compose_repo_path(ok[i].in, "p", &out, &err) == 0, "%s: %s", ok[i].in, err.message);
        ck_assert_str_eq(out, ok[i].out);
        free(out);
    }
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        char *out = NULL;
        dms_error err = {0};
        ck_assert_msg(compose_repo_path(bad[i], "p", &out, &err) == -DMS_E_INVALID, "%s accepted", bad[i]);
    }
}
END_TEST

START_TEST(test_too_many_services_are_refused)
{
    dmsu_buf b = {0};
    dmsu_buf_printf(&b, "services:\n");
    for (int i = 0; i <= COMPOSE_SERVICES_MAX; i++)
        dmsu_buf_printf(&b, "  s%d: {image: x}\n", i);
    dms_error err = {0};
    compose_file *f = NULL;
    ck_assert_int_eq(compose_parse(b.data, b.len, env_none, &f, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "services");
    dmsu_buf_free(&b);
}
END_TEST

/* The example's file, as dmsd would read it from the repository: examples/examples.mk gives this object the
 * absolute path of examples/, so the suite runs from any directory (the relative path is for tools such as
 * clang-tidy that compile it without that define; make runs the suites from the top of the tree). */
#ifndef DMS_EXAMPLES_DIR
#define DMS_EXAMPLES_DIR "examples"
#endif

START_TEST(test_example_compose_app_parses_with_its_route_and_dependencies)
{
    char *text = NULL;
    size_t len = 0;
    dms_error err = {0};
    int r = dms_read_file(DMS_EXAMPLES_DIR "/compose-app/compose.yaml", COMPOSE_FILE_MAX_BYTES, &text, &len,
                          &err);
    ck_assert_msg(r == 0, "read examples/compose-app/compose.yaml: %s", err.message);
    char *env[] = {"GREETING=hi there", NULL};
    compose_file *f = NULL;
    r = compose_parse(text, len, env, &f, &err);
    ck_assert_msg(r == 0, "examples/compose-app/compose.yaml: %s (field %s)", err.message, err.field);
    free(text);

    ck_assert_uint_eq(f->n_services, 2);
    ck_assert_str_eq(f->services[0].name, "api"); /* the worker waits for it */
    ck_assert_str_eq(f->services[1].name, "worker");
    ck_assert_int_eq(f->route_service, 0);
    ck_assert_int_eq(f->route_port, 8080);
    ck_assert_uint_eq(f->n_volumes, 1);
    ck_assert_str_eq(f->volumes[0].name, "data");

    const compose_service *api = &f->services[0];
    ck_assert_str_eq(api->build->context, ".");
    ck_assert_str_eq(api->build->dockerfile, "api/Dockerfile");
    ck_assert_str_eq(api->environment[0], "PORT=8080");
    ck_assert_str_eq(api->environment[1], "GREETING=hi there"); /* interpolated from the droid's env */
    ck_assert_uint_eq(api->n_ports, 1);
    ck_assert_int_eq(api->ports[0].port, 8080);
    ck_assert_int_eq(api->healthcheck.kind, COMPOSE_HEALTH_CMD);
    ck_assert_str_eq(api->healthcheck.test[0], "python3");
    ck_assert_int_eq(api->healthcheck.interval_ms, 2000);
    ck_assert_uint_eq(api->n_volumes, 1);
    ck_assert_str_eq(api->volumes[0].source, "data");
    ck_assert(api->volumes[0].read_only);
    ck_assert(!api->singleton);

    const compose_service *w = &f->services[1];
    ck_assert_str_eq(w->build->context, "worker");
    ck_assert_uint_eq(w->n_depends_on, 1);
    ck_assert_str_eq(w->depends_on[0].service, "api");
    ck_assert_int_eq(w->depends_on[0].condition, COMPOSE_COND_HEALTHY);
    ck_assert_str_eq(w->environment[0], "API_URL=http://api:8080"); /* the api by its service name */
    ck_assert_str_eq(w->environment[1], "WORKER_INTERVAL_S=5");     /* the default */
    ck_assert_uint_eq(w->n_ports, 0);
    ck_assert_uint_eq(w->n_volumes, 1);
    ck_assert_str_eq(w->volumes[0].source, "data");
    ck_assert_str_eq(w->volumes[0].target, "/data");
    ck_assert(!w->volumes[0].read_only);
    ck_assert(w->singleton);
    compose_file_free(f);
}
END_TEST

static Suite *compose_suite(void)
{
    Suite *s = suite_create("dmsd_compose");
    TCase *tc = tcase_create("compose");
    tcase_add_test(tc, test_realistic_file_parses_into_the_expected_model);
    tcase_add_test(tc, test_file_without_any_secret_in_an_error_message);
    tcase_add_loop_test(tc, test_each_refused_key_is_named_by_its_path, 0, DMS_ARRAY_SIZE(refused));
    tcase_add_loop_test(tc, test_interpolation_forms_give_the_expected_value, 0,
                        DMS_ARRAY_SIZE(interpolated));
    tcase_add_test(tc, test_interpolation_errors_name_the_variable_and_the_path);
    tcase_add_test(tc, test_interpolation_output_is_bounded);
    tcase_add_test(tc, test_alias_bomb_is_refused_within_the_node_budget);
    tcase_add_test(tc, test_oversized_and_too_deep_files_are_refused);
    tcase_add_test(tc, test_yaml_syntax_error_has_line_and_column);
    tcase_add_test(tc, test_merge_keys_let_explicit_keys_and_earlier_sources_win);
    tcase_add_test(tc, test_depends_on_cycle_and_unknown_service_are_refused_naming_them);
    tcase_add_test(tc, test_start_order_follows_depends_on_stably_by_name);
    tcase_add_test(tc, test_route_rules);
    tcase_add_test(tc, test_port_forms_keep_the_container_side);
    tcase_add_test(tc, test_duration_forms);
    tcase_add_test(tc, test_memory_and_cpu_forms);
    tcase_add_test(tc, test_shell_words_split_like_a_shell_without_expansion);
    tcase_add_test(tc, test_healthcheck_forms);
    tcase_add_test(tc, test_environment_takes_bare_and_null_keys_from_the_droid_env);
    tcase_add_test(tc, test_repo_paths_are_normalised_and_kept_inside);
    tcase_add_test(tc, test_too_many_services_are_refused);
    tcase_add_test(tc, test_example_compose_app_parses_with_its_route_and_dependencies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(compose_suite());
}
