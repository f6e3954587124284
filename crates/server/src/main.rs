//! `mediabox`: serve the API, apply migrations, mint development tokens, collect garbage.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use mediabox::{auth_config, Config};

#[derive(Debug, Parser)]
#[command(name = "mediabox", version, about = "A self-hostable media and gallery service")]
struct Cli {
    /// A TOML configuration file; environment variables win over it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint a token with the configured HS256 secret (development and scripts).
    Token {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
        /// Comma-separated permissions, e.g. media:read,media:write,event:write.
        #[arg(long, default_value = "media:read,media:write,media:delete,event:write,catalog:write")]
        perm: String,
        /// Lifetime: seconds, or with a unit: 30m, 4h, 2d.
        #[arg(long, default_value = "4h")]
        ttl: String,
    },
    /// Collect expired uploads and orphan blobs once and exit.
    Gc,
}

fn parse_ttl(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: i64 = num.parse().with_context(|| format!("--ttl {s:?}: expected seconds or 30m, 4h, 2d"))?;
    if n <= 0 {
        bail!("--ttl must be positive");
    }
    Ok(n * mult)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let json = std::env::var("MEDIABOX_LOG_FORMAT").is_ok_and(|v| v == "json");
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if json {
        b.json().init();
    } else {
        b.compact().init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let url = config.database_url.clone();
            let n = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                let db = mediabox_persistence::Db::connect(&url, 1, std::time::Duration::from_secs(10))
                    .context("opening the database")?;
                db.migrate().context("applying migrations")
            })
            .await??;
            println!("applied {n} migration(s)");
            Ok(())
        }
        Command::Token { sub, org, perm, ttl } => {
            let perms: Vec<String> =
                perm.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
            let claims = mediabox_http::auth::dev_claims(&sub, &org, &perms, parse_ttl(&ttl)?);
            let token = auth_config(&config)?.mint(&claims).map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
        }
        Command::Gc => {
            let wired = mediabox::wire(&config).await?;
            let c = mediabox::gc_once(&wired, mediabox::BLOB_GRACE).await?;
            println!(
                "collected {} expired upload(s) ({} bytes), {} stray staging ({} bytes) and {} orphan blob(s) ({} bytes)",
                c.uploads.count, c.uploads.bytes, c.staging.count, c.staging.bytes, c.blobs.count, c.blobs.bytes
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = mediabox::start(&config).await?;
    let base = format!("http://{}", running.addr);
    println!("mediabox listening on {base}");
    if config.jwt_secret.is_none() && config.jwt_public_key.is_none() {
        let exe = std::env::current_exe().ok().map_or_else(|| "mediabox".to_owned(), |p| p.display().to_string());
        let exe = std::env::current_dir()
            .ok()
            .and_then(|d| std::path::Path::new(&exe).strip_prefix(&d).ok().map(|p| format!("./{}", p.display())))
            .unwrap_or(exe);
        println!("Development secret: {}", config.data_dir.join("jwt-secret").display());
        println!("Get a token and try a first request:");
        println!("  export TOKEN=$({exe} token --sub u-1 --org acme)");
        println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/v2/event/");
        println!("API docs: {base}/docs");
        // The web app signs in from the link's fragment, which the browser never sends.
        let perms: Vec<String> =
            ["media:read", "media:write", "media:delete", "event:write", "catalog:write"].map(str::to_owned).to_vec();
        let claims = mediabox_http::auth::dev_claims("u-1", "acme", &perms, 8 * 3600);
        let token = auth_config(&config)?.mint(&claims).map_err(anyhow::Error::msg)?;
        println!("Web app (signed in as u-1 of acme for 8 hours): {base}/app/#token={token}");
    }
    let handle = running.handle.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.stop(true).await;
        }
    });
    running.task.await.context("server task")?.context("server")
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_take_seconds_or_a_unit() {
        assert_eq!(parse_ttl("90").ok(), Some(90));
        assert_eq!(parse_ttl("30m").ok(), Some(1800));
        assert_eq!(parse_ttl("4h").ok(), Some(14_400));
        assert_eq!(parse_ttl("2d").ok(), Some(172_800));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
