//! The CLI's account commands: login, users, tokens, teams, line assignments, tsecimp,
//! the audit log, and a self-signed certificate to try TLS with.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use tapir_wire::{
    AssignBody, AssignmentDto, AuditDto, IssuedTokenDto, LoginBody, LoginDto, MeDto, NewTeamBody,
    NewTokenBody, NewUserBody, PasswordBody, TeamDto, TeamRightBody, TokenDto, TsecimpResultDto,
    UserDto, UserPatchBody,
};

use crate::client::{Client, segment};
use crate::{credentials, output};

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Log in with a password (from TAPIR_PASSWORD or standard input) and keep the token
    /// for later commands.
    Login { user: String },
    /// End the session of the saved login and forget its token.
    Logout,
    /// Who the CLI acts as, and the lines it may use.
    Whoami,
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage API tokens for applications.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage teams: members get a right on each other's own lines.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Give USER the line LINE (a permanent line id).
    Assign {
        user: String,
        line: u32,
        /// `assigned` (default) or `own`.
        #[arg(long)]
        relation: Option<String>,
        /// `control` (default) or `monitor`.
        #[arg(long)]
        right: Option<String>,
    },
    /// Take the line LINE from USER.
    Unassign { user: String, line: u32 },
    /// List who has which lines directly.
    Assignments,
    /// Import or export line assignments as Microsoft tsecimp XML.
    #[command(subcommand)]
    Tsecimp(TsecimpCmd),
    /// Read the audit log of control actions, newest first.
    Audit {
        #[arg(long)]
        line: Option<u32>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    List,
    /// Add a user; `--password` reads the password from TAPIR_PASSWORD or standard input.
    Add {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        /// `user` (default) or `admin`.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        friendly_name: Option<String>,
        #[arg(long)]
        password: bool,
        /// Not allowed to place or drop calls where an instance reserves that.
        #[arg(long)]
        no_dial: bool,
    },
    /// Set a password (from TAPIR_PASSWORD or standard input), or remove it with --none.
    Passwd {
        name: String,
        #[arg(long)]
        none: bool,
    },
    /// Change a user's friendly name or dial right.
    Set {
        name: String,
        #[arg(long)]
        friendly_name: Option<String>,
        #[arg(long)]
        may_dial: Option<bool>,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    List,
    /// Make a token; its secret is printed once.
    Create {
        label: String,
        /// The token's user (default: you).
        #[arg(long)]
        user: Option<String>,
        /// Seconds until it expires (default: never).
        #[arg(long)]
        lifetime: Option<i64>,
    },
    Revoke {
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCmd {
    List,
    Add {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        /// The right members get on each other's own lines: `monitor` (default) or `control`.
        #[arg(long)]
        right: Option<String>,
    },
    /// Change the right members get on each other's own lines.
    Right {
        name: String,
        right: String,
    },
    Join {
        name: String,
        user: String,
    },
    Leave {
        name: String,
        user: String,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TsecimpCmd {
    /// Apply a tsecimp file; nothing changes when it has any error.
    Import {
        file: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Print the tenant's assignments as a tsecimp file.
    Export {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCmd {
    /// Make a self-signed certificate and key to try TLS with.
    SelfSigned {
        /// Host names and addresses the certificate is for (default localhost, 127.0.0.1,
        /// ::1); repeatable.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Where to write tapir-cert.pem and tapir-key.pem.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// `tapir tls ...`, which needs no server.
pub fn tls(command: TlsCmd) -> Result<()> {
    let TlsCmd::SelfSigned { hosts, dir } = command;
    let pair = tapir_tls::self_signed::generate(&hosts).context("cannot make the certificate")?;
    let (cert, key) = tapir_tls::self_signed::write_pair(&pair, &dir)?;
    output::line(&format!(
        "wrote {} and {}\nadd to the config:\n[server.tls]\ncert = {:?}\nkey = {:?}\n\
         and give clients --ca-file {}",
        cert.display(),
        key.display(),
        cert.display(),
        key.display(),
        cert.display()
    ))?;
    Ok(())
}

fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if json {
        output::json(value)?;
        Ok(())
    } else {
        human()
    }
}

fn users_table(users: &[UserDto]) -> Result<()> {
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.tenant.clone().unwrap_or_else(|| "*".into()),
                u.role.clone(),
                if u.has_password { "yes" } else { "no" }.into(),
                if u.may_dial { "yes" } else { "no" }.into(),
                u.friendly_name.clone(),
            ]
        })
        .collect::<Vec<_>>();
    output::table(
        &["USER", "TENANT", "ROLE", "PASSWORD", "DIAL", "NAME"],
        &rows,
    )?;
    Ok(())
}

fn tokens_table(tokens: &[TokenDto]) -> Result<()> {
    let rows = tokens
        .iter()
        .map(|t| {
            let state = match (t.revoked_at, t.expires_at) {
                (Some(_), _) => "revoked".to_owned(),
                (None, Some(at)) => format!("expires {at}"),
                (None, None) => "live".to_owned(),
            };
            vec![
                t.id.to_string(),
                t.user.clone(),
                t.kind.clone(),
                t.label.clone(),
                state,
            ]
        })
        .collect::<Vec<_>>();
    output::table(&["ID", "USER", "KIND", "LABEL", "STATE"], &rows)?;
    Ok(())
}

pub async fn run(client: &Client, command: AccountCmd, json: bool) -> Result<()> {
    match command {
        AccountCmd::Login { user } => {
            let password = credentials::read_password()?;
            let login: LoginDto = client.post("/login", &LoginBody { user, password }).await?;
            let path = credentials::save_token(&login.token)?;
            print(json, &login.user, || {
                output::line(&format!(
                    "logged in as {}; token saved in {}",
                    login.user.name,
                    path.display()
                ))?;
                Ok(())
            })
        }
        AccountCmd::Logout => {
            client
                .call_empty::<()>(Method::POST, "/logout", None)
                .await?;
            if let Some(path) = credentials::forget_token() {
                output::line(&format!("logged out; removed {}", path.display()))?;
            }
            Ok(())
        }
        AccountCmd::Whoami => {
            let me: MeDto = client.get("/me").await?;
            print(json, &me, || {
                let user = &me.user;
                output::line(&format!(
                    "{} ({}, tenant {}), {} line(s)",
                    user.name,
                    user.role,
                    user.tenant.as_deref().unwrap_or("*"),
                    me.lines.len()
                ))?;
                Ok(())
            })
        }
        AccountCmd::User(command) => user(client, command, json).await,
        AccountCmd::Token(command) => token(client, command, json).await,
        AccountCmd::Team(command) => team(client, command, json).await,
        AccountCmd::Assign {
            user,
            line,
            relation,
            right,
        } => {
            let body = AssignBody { relation, right };
            let done: AssignmentDto = client
                .put(&format!("/users/{}/lines/{line}", segment(&user)), &body)
                .await?;
            print(json, &done, || {
                output::line(&format!(
                    "{} has line #{} ({}, {})",
                    done.user, done.line, done.relation, done.right
                ))?;
                Ok(())
            })
        }
        AccountCmd::Unassign { user, line } => {
            client
                .call_empty::<()>(
                    Method::DELETE,
                    &format!("/users/{}/lines/{line}", segment(&user)),
                    None,
                )
                .await?;
            output::line(&format!("{user} no longer has line #{line}"))?;
            Ok(())
        }
        AccountCmd::Assignments => {
            let all: Vec<AssignmentDto> = client.get("/assignments").await?;
            print(json, &all, || {
                let rows = all
                    .iter()
                    .map(|a| {
                        vec![
                            a.user.clone(),
                            format!("#{}", a.line),
                            a.relation.clone(),
                            a.right.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["USER", "LINE", "RELATION", "RIGHT"], &rows)?;
                Ok(())
            })
        }
        AccountCmd::Tsecimp(command) => tsecimp(client, command, json).await,
        AccountCmd::Audit { line, user, limit } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(line.map(|l| format!("line={l}")));
            query.extend(user.map(|u| format!("user={}", segment(&u))));
            let entries: Vec<AuditDto> = client.get(&format!("/audit?{}", query.join("&"))).await?;
            print(json, &entries, || {
                let rows = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.at.to_string(),
                            e.user.clone(),
                            e.action.clone(),
                            e.line.map(|l| format!("#{l}")).unwrap_or_default(),
                            e.call.map(|c| c.to_string()).unwrap_or_default(),
                            e.result.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(
                    &["AT(ms)", "USER", "ACTION", "LINE", "CALL", "RESULT"],
                    &rows,
                )?;
                Ok(())
            })
        }
    }
}

async fn user(client: &Client, command: UserCmd, json: bool) -> Result<()> {
    match command {
        UserCmd::List => {
            let users: Vec<UserDto> = client.get("/users").await?;
            print(json, &users, || users_table(&users))
        }
        UserCmd::Add {
            name,
            tenant,
            role,
            friendly_name,
            password,
            no_dial,
        } => {
            let password = if password {
                Some(credentials::read_password()?)
            } else {
                None
            };
            let body = NewUserBody {
                name,
                tenant,
                role,
                friendly_name,
                password,
                may_dial: Some(!no_dial),
            };
            let user: UserDto = client.post("/users", &body).await?;
            print(json, &user, || users_table(std::slice::from_ref(&user)))
        }
        UserCmd::Passwd { name, none } => {
            let password = if none {
                None
            } else {
                Some(credentials::read_password()?)
            };
            client
                .call_empty(
                    Method::PUT,
                    &format!("/users/{}/password", segment(&name)),
                    Some(&PasswordBody { password }),
                )
                .await?;
            output::line(&format!("password of {name} changed"))?;
            Ok(())
        }
        UserCmd::Set {
            name,
            friendly_name,
            may_dial,
        } => {
            let body = UserPatchBody {
                friendly_name,
                may_dial,
            };
            let user: UserDto = client
                .patch(&format!("/users/{}", segment(&name)), &body)
                .await?;
            print(json, &user, || users_table(std::slice::from_ref(&user)))
        }
        UserCmd::Remove { name } => {
            client
                .call_empty::<()>(Method::DELETE, &format!("/users/{}", segment(&name)), None)
                .await?;
            output::line(&format!("removed user {name}"))?;
            Ok(())
        }
    }
}

async fn token(client: &Client, command: TokenCmd, json: bool) -> Result<()> {
    match command {
        TokenCmd::List => {
            let tokens: Vec<TokenDto> = client.get("/tokens").await?;
            print(json, &tokens, || tokens_table(&tokens))
        }
        TokenCmd::Create {
            label,
            user,
            lifetime,
        } => {
            let body = NewTokenBody {
                user,
                label,
                lifetime_s: lifetime,
            };
            let issued: IssuedTokenDto = client.post("/tokens", &body).await?;
            print(json, &issued, || {
                output::line(&issued.token)?;
                eprintln!(
                    "(token {} of {}; shown only now)",
                    issued.info.id, issued.info.user
                );
                Ok(())
            })
        }
        TokenCmd::Revoke { id } => {
            client
                .call_empty::<()>(Method::DELETE, &format!("/tokens/{id}"), None)
                .await?;
            output::line(&format!("token {id} revoked"))?;
            Ok(())
        }
    }
}

async fn team(client: &Client, command: TeamCmd, json: bool) -> Result<()> {
    let path = |name: &str| format!("/teams/{}", segment(name));
    match command {
        TeamCmd::List => {
            let teams: Vec<TeamDto> = client.get("/teams").await?;
            print(json, &teams, || {
                let rows = teams
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.tenant.clone(),
                            t.member_right.clone(),
                            t.members.join(" "),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["TEAM", "TENANT", "RIGHT", "MEMBERS"], &rows)?;
                Ok(())
            })
        }
        TeamCmd::Add {
            name,
            tenant,
            right,
        } => {
            let body = NewTeamBody {
                name,
                tenant,
                member_right: right,
            };
            let team: TeamDto = client.post("/teams", &body).await?;
            print(json, &team, || {
                output::line(&format!("team {} ({}) added", team.name, team.member_right))?;
                Ok(())
            })
        }
        TeamCmd::Right { name, right } => {
            let body = TeamRightBody {
                member_right: right,
            };
            client
                .call_empty(Method::PUT, &path(&name), Some(&body))
                .await?;
            output::line(&format!(
                "team {name}: members now have {}",
                body.member_right
            ))?;
            Ok(())
        }
        TeamCmd::Join { name, user } => {
            client
                .call_empty::<()>(
                    Method::PUT,
                    &format!("{}/members/{}", path(&name), segment(&user)),
                    None,
                )
                .await?;
            output::line(&format!("{user} joined team {name}"))?;
            Ok(())
        }
        TeamCmd::Leave { name, user } => {
            client
                .call_empty::<()>(
                    Method::DELETE,
                    &format!("{}/members/{}", path(&name), segment(&user)),
                    None,
                )
                .await?;
            output::line(&format!("{user} left team {name}"))?;
            Ok(())
        }
        TeamCmd::Remove { name } => {
            client
                .call_empty::<()>(Method::DELETE, &path(&name), None)
                .await?;
            output::line(&format!("team {name} removed"))?;
            Ok(())
        }
    }
}

async fn tsecimp(client: &Client, command: TsecimpCmd, json: bool) -> Result<()> {
    let query = |tenant: &Option<String>| {
        tenant
            .as_ref()
            .map(|t| format!("?tenant={}", segment(t)))
            .unwrap_or_default()
    };
    match command {
        TsecimpCmd::Import { file, tenant } => {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let answer = client
                .request_text(
                    Method::POST,
                    &format!("/tsecimp{}", query(&tenant)),
                    Some(text.into()),
                    "application/xml",
                )
                .await?;
            let result: TsecimpResultDto = serde_json::from_str(&answer)
                .with_context(|| format!("unexpected answer: {answer}"))?;
            print(json, &result, || {
                output::line(&format!(
                    "imported {}: {} line(s) given, {} taken, {} user(s) created, {} cleared",
                    file.display(),
                    result.lines_given,
                    result.lines_taken,
                    result.users_created.len(),
                    result.users_cleared.len()
                ))?;
                Ok(())
            })
        }
        TsecimpCmd::Export { tenant } => {
            let xml = client
                .request_text(
                    Method::GET,
                    &format!("/tsecimp{}", query(&tenant)),
                    None,
                    "",
                )
                .await?;
            print!("{xml}");
            Ok(())
        }
    }
}
