use super::*;
use crate::config::service::ServiceConfig;
use crate::model::LogLevel;
use std::path::Path;

fn alias(server: usize, url: &str, group: Option<&str>) -> Alias {
    let dir = std::env::temp_dir().join(format!("mod_wps-mount-{}", uuid::Uuid::new_v4()));
    let text = format!(
        "[server]\nworkdir = {}\n[processes]\nbuiltin = say_hello\n",
        dir.display()
    );
    let cfg = ServiceConfig::parse(&text, Path::new("/etc/wps/m.cfg")).unwrap();
    let service = Service::from_config(cfg).unwrap();
    service.store.prepare(None).unwrap();
    Alias {
        server,
        url: url.into(),
        service: Arc::new(service),
        group: group.map(str::to_owned),
    }
}

#[test]
fn alias_paths_match_whole_segments() {
    assert!(path_matches("/wps", "/wps"));
    assert!(path_matches("/wps", "/wps/"));
    assert!(path_matches("/wps/", "/wps/outputs/x"));
    assert!(!path_matches("/wps", "/wpsx"));
    assert!(!path_matches("/wps", "/"));
    assert!(path_matches("/", "/anything"));
}

#[test]
fn vhost_aliases_win_then_the_longest() {
    let g = Generation {
        pools: vec![PoolConfig::new("big")],
        aliases: vec![
            alias(1, "/wps", None),
            alias(1, "/wps/deep", None),
            alias(2, "/wps", Some("big")),
        ],
        location_groups: vec![],
        main_server: 1,
    };
    assert_eq!(g.alias_for(1, "/wps/deep/x").unwrap().0, 1);
    assert_eq!(g.alias_for(1, "/wps/outputs/a.xml").unwrap().0, 0);
    assert_eq!(
        g.alias_for(2, "/wps").unwrap().0,
        2,
        "the vhost's own alias"
    );
    assert_eq!(g.alias_for(2, "/wps/deep").unwrap().0, 2);
    assert_eq!(
        g.alias_for(3, "/wps/deep").unwrap().0,
        1,
        "main server aliases everywhere"
    );
    assert!(g.alias_for(1, "/other").is_none());
    assert!(g.check_group("big").is_ok() && g.check_group(DEFAULT_POOL).is_ok());
    assert!(g
        .check_group("nope")
        .unwrap_err()
        .contains("WPSDaemonProcess nope"));
    let lines = g.describe();
    assert!(lines
        .iter()
        .any(|(l, m)| *l == LogLevel::Info
            && m.contains("at /wps (1 processes, process group 'big')")));
}

#[test]
fn a_child_runs_each_alias_on_its_pools() {
    let g = Arc::new(Generation {
        pools: vec![PoolConfig::new("big")],
        aliases: vec![alias(1, "/wps", None), alias(1, "/other", Some("big"))],
        location_groups: vec!["big".into()],
        main_server: 1,
    });
    let child = ChildState::start(g, Arc::new(|_, _| {}));
    // the default pool exists for the alias that names none; "big" serves both
    assert_eq!(child.pools.len(), 2);
    assert_eq!(child.runners[0].len(), 2);
    assert_eq!(child.runners[1].len(), 1);
    let req = HttpRequest {
        method: "GET",
        path: "",
        query: "service=WPS&request=GetCapabilities",
        headers: vec![],
        body: crate::front::Body::Bytes(Default::default()),
        base_url: "http://h/wps",
        user: None,
    };
    let r = child.handle(0, "big", &req);
    assert_eq!(r.status, 200);
    let r = child.handle(1, DEFAULT_POOL, &req);
    assert_eq!(r.status, 500, "alias 1 has no runner on the default pool");
    let (pools, services) = child.status(|_| None, None);
    assert_eq!(
        pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["big", "default"]
    );
    assert_eq!(services.len(), 2);
    assert!(child.shutdown(true).is_empty());
}
