//! The production shape, for real: nginx terminating HTTPS with a throw-away certificate, in
//! front of two `portcullis serve` processes on one PostgreSQL (accounts) and one Redis
//! (sessions, log-in limits), `TRUSTED_PROXIES` set to the proxy's address and `PUBLIC_ORIGIN`
//! its `https` origin. Driven over HTTPS by clients on loopback addresses of their own
//! (127.0.0.2, …), so the site can tell a client's address from the proxy's (127.0.0.1).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::support::{PASSWORD, SECRET, Site};
use portcullis_testing::nginx::UPSTREAM_HEADER;
use portcullis_testing::{Postgres, RedisServer, TlsProxy};

/// The proxy's address as the site processes see it: nginx connects to them from 127.0.0.1.
const PROXY: &str = "127.0.0.1";
/// Failed log-ins allowed per client address (and per user name) in this test.
const LOGIN_LIMIT: &str = "3/3m";

/// Request headers as `(name, value)` pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// The deployment: the proxy, the two site processes behind it, and what they share.
struct Deployment {
    proxy: TlsProxy,
    sites: [Site; 2],
    /// The sites' environment, for the administrator's commands.
    env: Vec<(String, String)>,
    _redis: RedisServer,
    _dirs: [tempfile::TempDir; 2],
}

impl Deployment {
    fn start() -> Self {
        let redis = RedisServer::start();
        let database = Postgres::shared().database();
        // The proxy's port is chosen before the sites start, so PUBLIC_ORIGIN can name it:
        // the sites listen first (on ports of their own), then nginx is told where they are.
        let public_port = portcullis_testing::redis::free_port();
        let origin = format!("https://localhost:{public_port}");
        let redis_url = redis.url();
        let env = [
            ("PORTCULLIS_PROFILE", "redis"),
            ("SECRET_KEY", SECRET),
            ("REDIS_URL", redis_url.as_str()),
            ("DATABASE_URL", database.as_str()),
            ("TRUSTED_PROXIES", PROXY),
            ("PUBLIC_ORIGIN", origin.as_str()),
            ("LOGIN_RATE_LIMIT", LOGIN_LIMIT),
        ];
        let dirs = [(); 2].map(|()| tempfile::tempdir().unwrap());
        let sites = [0, 1].map(|i| Site::start(dirs[i].path(), &env));
        let proxy = TlsProxy::start_on(public_port, &[sites[0].addr, sites[1].addr]);
        assert_eq!(proxy.origin(), origin);
        let env = env
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Self {
            proxy,
            sites,
            env,
            _redis: redis,
            _dirs: dirs,
        }
    }

    /// A browser on the loopback address `127.0.0.<n>`, trusting only the throw-away CA.
    fn browser(&self, n: u8) -> Browser {
        let ca = reqwest::Certificate::from_pem(&self.proxy.ca_pem()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .https_only(true)
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
            .resolve(
                "localhost",
                SocketAddr::from((Ipv4Addr::LOCALHOST, self.proxy.port())),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            origin: self.proxy.origin(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    /// Runs `portcullis <args>` as an administrator would on a third machine: the sites'
    /// settings, no server of its own.
    fn command(&self, args: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        crate::support::portcullis(dir.path())
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Which site process an `X-Upstream` value names.
    fn process_of(&self, upstream: &str) -> usize {
        self.sites
            .iter()
            .position(|site| site.addr.to_string() == upstream)
            .unwrap_or_else(|| panic!("{upstream:?} is neither site process"))
    }
}

/// A response, read whole, with the process that served it.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
    upstream: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }
}

/// Keeps cookies as a browser does, and sends `Origin` on unsafe requests as a browser does.
struct Browser {
    client: reqwest::Client,
    origin: String,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` received, verbatim.
    set_cookies: Vec<String>,
}

impl Browser {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie.join("; "))
        };
        let response = request.send().await.unwrap();
        for header in response.headers().get_all("set-cookie") {
            let header = header.to_str().unwrap().to_owned();
            let pair = header.split(';').next().unwrap().trim();
            let (name, value) = pair.split_once('=').unwrap();
            if header.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(header);
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let upstream = headers
            .get(UPSTREAM_HEADER)
            .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
            upstream,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.origin));
        self.send(request).await
    }

    async fn csrf_token(&mut self) -> String {
        let answer = self.get("/api/csrf-token").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        json["csrf_token"].as_str().unwrap().to_owned()
    }

    /// A form post with a fresh token and `headers` (a browser's `Origin` unless given others).
    async fn post_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let token = self.csrf_token().await;
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", &token));
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut request = self
            .client
            .post(format!("{}{path}", self.origin))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let origin = self.origin.clone();
        self.post_with(path, fields, &[("origin", &origin)]).await
    }

    async fn register_and_log_in(&mut self, name: &str) -> Answer {
        let fields = [
            ("name", name),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ];
        let registered = self.post("/register", &fields).await;
        assert_eq!(registered.status, 303, "{}", registered.body);
        let logged_in = self
            .post("/login", &[("name", name), ("password", PASSWORD)])
            .await;
        assert_eq!(logged_in.status, 303, "{}", logged_in.body);
        logged_in
    }
}

/// The row handles of the devices page (`<input name="session" value="…">`).
fn device_handles(body: &str) -> Vec<String> {
    body.split("name=\"session\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_two_processes_share_sessions_devices_and_limits() {
    let deployment = Deployment::start();
    let mut laptop = deployment.browser(2);

    // nginx alternates between the two processes (round-robin), as its X-Upstream says.
    let mut served = Vec::new();
    for _ in 0..4 {
        let answer = laptop.get("/healthz").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        served.push(deployment.process_of(&answer.upstream));
    }
    assert!(
        served.windows(2).all(|pair| pair[0] != pair[1]),
        "requests alternate between the processes: {served:?}"
    );

    // Over HTTPS the cookies are Secure and __Host-, and HSTS is sent.
    let logged_in = laptop.register_and_log_in("alice").await;
    assert!(
        logged_in
            .header("strict-transport-security")
            .starts_with("max-age="),
        "HSTS on an HTTPS answer: {:?}",
        logged_in.headers
    );
    assert!(!laptop.set_cookies.is_empty());
    for cookie in &laptop.set_cookies {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(cookie.contains("; Secure"), "{cookie}");
        assert!(cookie.contains("; Path=/"), "{cookie}");
        assert!(!cookie.contains("Domain="), "{cookie}");
    }
    assert!(laptop.cookies.contains_key("__Host-session"));

    // The session is known to both processes.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let me = laptop.get("/api/me").await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert!(me.body.contains("\"alice\""), "{}", me.body);
        seen.push(deployment.process_of(&me.upstream));
    }
    assert_ne!(seen[0], seen[1], "each process served the session once");

    // The devices page is the same from either process, with each device's real address.
    let mut phone = deployment.browser(3);
    let fields = [("name", "alice"), ("password", PASSWORD)];
    assert_eq!(phone.post("/login", &fields).await.status, 303);
    let mut pages = Vec::new();
    for _ in 0..2 {
        let page = laptop.get("/account/sessions").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("127.0.0.2") && page.body.contains("127.0.0.3"),
            "the clients' addresses, not the proxy's: {}",
            page.body
        );
        pages.push((
            deployment.process_of(&page.upstream),
            device_handles(&page.body),
        ));
    }
    assert_ne!(pages[0].0, pages[1].0);
    assert_eq!(pages[0].1.len(), 2, "two devices: {:?}", pages[0].1);
    let mut handles = (pages[0].1.clone(), pages[1].1.clone());
    handles.0.sort();
    handles.1.sort();
    assert_eq!(handles.0, handles.1, "both processes list the same devices");
    // Logging the phone out from the laptop ends it on both processes.
    let phone_me = phone.get("/api/me").await;
    assert_eq!(phone_me.status, 200);
    let ended = laptop.post("/account/sessions/end-others", &[]).await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    for _ in 0..2 {
        assert_eq!(phone.get("/api/me").await.status, 401);
    }
    assert_eq!(laptop.get("/api/me").await.status, 200);

    // The origin check and the Referer rule, over HTTPS.
    let origin = deployment.proxy.origin();
    let same_origin_referer = format!("{origin}/account");
    // (headers, status, what the answer says, why)
    let cases: [(Headers<'_>, u16, &str, &str); 5] = [
        (
            &[("origin", "https://evil.example")],
            403,
            "Cross-origin request refused.",
            "cross-origin Origin",
        ),
        (
            &[("origin", "http://localhost")],
            403,
            "Cross-origin request refused.",
            "the site's host over plain HTTP",
        ),
        (
            &[("referer", "https://evil.example/")],
            403,
            "Referer checking failed - https://evil.example/ does not match any trusted origins.",
            "cross-origin Referer",
        ),
        (
            &[],
            403,
            "Referer checking failed - no Referer.",
            "neither Origin nor Referer over HTTPS",
        ),
        (
            &[("referer", &same_origin_referer)],
            303,
            "",
            "same-origin Referer",
        ),
    ];
    for (headers, status, says, what) in cases {
        let answer = laptop
            .post_with(
                "/account/display-name",
                &[("display_name", "Alice")],
                headers,
            )
            .await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        // The site's refusal page quotes the reason HTML-escaped (`/` as `&#x2f;`).
        let shown = answer.body.replace("&#x2f;", "/");
        assert!(shown.contains(says), "{what}: {}", answer.body);
    }
    let accepted = laptop
        .post("/account/display-name", &[("display_name", "Alice L.")])
        .await;
    assert_eq!(
        accepted.status, 303,
        "same-origin Origin: {}",
        accepted.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_the_login_limit_counts_the_real_client_address() {
    let deployment = Deployment::start();
    let mut owner = deployment.browser(4);
    owner.register_and_log_in("bob").await;

    // One client guesses at three names, through both processes, each time with a forged
    // X-Forwarded-For of its own: the site takes the entry nginx appended, not the forgery.
    let mut guesser = deployment.browser(5);
    let mut served = Vec::new();
    for (n, name) in ["bob", "carol", "dave"].iter().enumerate() {
        let forged = format!("198.51.100.{n}");
        let fields = [("name", *name), ("password", "not the password")];
        let answer = guesser
            .post_with(
                "/login",
                &fields,
                &[
                    ("origin", &guesser.origin.clone()),
                    ("x-forwarded-for", &forged),
                ],
            )
            .await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        served.push(deployment.process_of(&answer.upstream));
        // A token fetch and a post are two requests: one more, so the next post goes to the
        // other process.
        guesser.get("/healthz").await;
    }
    assert!(served.contains(&0) && served.contains(&1), "{served:?}");
    let fields = [("name", "erin"), ("password", "not the password")];
    let limited = guesser.post("/login", &fields).await;
    assert_eq!(
        limited.status, 429,
        "three failures from one address over two processes: {}",
        limited.body
    );
    assert!(limited.headers.contains_key("retry-after"));

    // Another client, behind the same proxy, is not limited: the count is per real address,
    // not the proxy's.
    let mut other = deployment.browser(6);
    let fields = [("name", "erin"), ("password", "not the password")];
    assert_eq!(other.post("/login", &fields).await.status, 401);
    let fields = [("name", "bob"), ("password", PASSWORD)];
    // bob's name has one failure only: he logs in from a fresh address.
    assert_eq!(other.post("/login", &fields).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_the_command_line_disables_a_user_on_every_process() {
    let deployment = Deployment::start();
    let mut laptop = deployment.browser(7);
    laptop.register_and_log_in("frank").await;
    let mut phone = deployment.browser(8);
    let fields = [("name", "frank"), ("password", PASSWORD)];
    assert_eq!(phone.post("/login", &fields).await.status, 303);

    // The command reads the same PostgreSQL and Redis as the sites.
    let output = deployment.command(&["users", "disable", "--user", "frank"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "disabled frank; ended 2 session(s)");
    // Each browser asks twice in a row: once of each process.
    for browser in [&mut laptop, &mut phone] {
        let mut served = Vec::new();
        for _ in 0..2 {
            let me = browser.get("/api/me").await;
            assert_eq!(me.status, 401, "{}", me.body);
            served.push(deployment.process_of(&me.upstream));
        }
        assert_ne!(served[0], served[1]);
    }
    assert_eq!(laptop.post("/login", &fields).await.status, 401);
}
