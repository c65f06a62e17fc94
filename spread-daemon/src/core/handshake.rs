//! The server side of session establishment (PROTOCOL.md §3): connect message, auth list, auth
//! choice, accept. Bytes come from and go to `spread_sys::wire::handshake`; this file holds only the
//! daemon's decisions (uniqueness, invented names, which methods succeed, timing).

use std::time::Instant;

use spread_sys::wire::constants::{AUTH_CHOICE_LEN, VERSION};
use spread_sys::wire::handshake::{
    Accept, ConnectParse, RejectCode, encode_auth_list, parse_auth_choice, parse_connect,
    parse_connect_final,
};
use spread_sys::wire::name::private_group_name;

use super::{Core, Peer, Phase, SessionId};
use crate::config::AuthMethod;

impl Core {
    /// Move `id`'s handshake on with what is buffered. `final_`: the step's deadline passed, judge
    /// what is there as Spread judges its single non-blocking read.
    pub(super) fn advance_handshake(&mut self, id: SessionId, now: Instant, final_: bool) {
        let Some(s) = self.sessions[id].as_mut() else {
            return;
        };
        match s.phase {
            Phase::AwaitConnect => self.connect_step(id, now, final_),
            Phase::AwaitAuth => self.auth_step(id, now, final_),
            Phase::Ready => {}
        }
    }

    fn connect_step(&mut self, id: SessionId, now: Instant, final_: bool) {
        let s = self.sessions[id].as_mut().expect("alive");
        // While bytes may still come, only complete messages are judged; at the deadline what is
        // there is judged as Spread judges its single read (a short name is REJECT_ILLEGAL_NAME).
        let parsed = if final_ {
            parse_connect_final(&s.inbuf)
        } else {
            parse_connect(&s.inbuf)
        };
        match parsed {
            ConnectParse::Incomplete => {
                if final_ {
                    // Silent or truncated before the name: closed without a word (vector
                    // daemon_kills_bad_requests, client 8).
                    self.reject(id, None);
                } else if !s.inbuf.is_empty() {
                    let grace = now + self.settings.handshake_grace;
                    s.deadline = Some(s.deadline.map_or(grace, |d| d.min(grace)));
                }
            }
            ConnectParse::Reject(code) => self.reject(id, Some(code.byte())),
            ConnectParse::Complete(req, used) => {
                s.inbuf.drain(..used);
                let name = if req.name.is_empty() {
                    self.invent_name(id)
                } else {
                    req.name.clone()
                };
                if self.names.contains_key(&name) {
                    self.reject(id, Some(RejectCode::NotUnique.byte()));
                    return;
                }
                self.names.insert(name.clone(), id);
                let s = self.sessions[id].as_mut().expect("alive");
                s.private_name = name;
                s.membership = req.group_membership();
                s.accept_patch = req.wants_patch_in_accept();
                if req.uses_auth_exchange() {
                    let methods: Vec<&str> = self
                        .settings
                        .auth_methods
                        .iter()
                        .map(|m| m.name())
                        .collect();
                    let mut list = Vec::new();
                    encode_auth_list(&methods, &mut list);
                    s.out.push_message(&[&list]);
                    self.queued_bytes += list.len();
                    s.phase = Phase::AwaitAuth;
                    s.deadline = Some(now + self.settings.handshake_timeout);
                    self.mark_dirty(id);
                    if methods.is_empty() {
                        self.reject(id, Some(RejectCode::Auth.byte()));
                        return;
                    }
                    if !self.sessions[id].as_ref().expect("alive").inbuf.is_empty() {
                        self.auth_step(id, now, false);
                    }
                } else {
                    // Libraries before 3.16 skip the exchange: IP if enabled, else NULL (§3.8).
                    let method = if self.settings.auth_methods.contains(&AuthMethod::Ip) {
                        Some(AuthMethod::Ip)
                    } else if self.settings.auth_methods.contains(&AuthMethod::Null) {
                        Some(AuthMethod::Null)
                    } else {
                        None
                    };
                    match method {
                        Some(m) if self.authenticate(id, &[m]) => self.accept_session(id),
                        _ => self.reject(id, Some(RejectCode::Auth.byte())),
                    }
                }
            }
        }
    }

    fn auth_step(&mut self, id: SessionId, now: Instant, final_: bool) {
        let s = self.sessions[id].as_mut().expect("alive");
        if s.inbuf.len() < AUTH_CHOICE_LEN {
            if final_ {
                self.reject(id, Some(RejectCode::Auth.byte()));
            } else if !s.inbuf.is_empty() {
                let grace = now + self.settings.handshake_grace;
                s.deadline = Some(s.deadline.map_or(grace, |d| d.min(grace)));
            }
            return;
        }
        let choice: [u8; AUTH_CHOICE_LEN] =
            s.inbuf[..AUTH_CHOICE_LEN].try_into().expect("90 bytes");
        s.inbuf.drain(..AUTH_CHOICE_LEN);
        let mut chosen = Vec::new();
        let mut ok = true;
        for name in parse_auth_choice(&choice) {
            match std::str::from_utf8(name).ok().and_then(AuthMethod::parse) {
                Some(m) if self.settings.auth_methods.contains(&m) => {
                    if !chosen.contains(&m) {
                        chosen.push(m);
                    }
                }
                _ => ok = false,
            }
        }
        ok &= !chosen.is_empty();
        for m in self.settings.required_auth.clone() {
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
        if ok && self.authenticate(id, &chosen) {
            self.accept_session(id);
        } else {
            self.reject(id, Some(RejectCode::Auth.byte()));
        }
    }

    /// Run every chosen method's server side; all must succeed.
    fn authenticate(&self, id: SessionId, methods: &[AuthMethod]) -> bool {
        let peer = self.sessions[id].as_ref().expect("alive").peer;
        methods.iter().all(|m| match m {
            AuthMethod::Null => true,
            // Spread's IP method never matches unix peers; TCP peers must match the allow-list.
            AuthMethod::Ip => match peer {
                Peer::Unix => false,
                Peer::Tcp(addr) => crate::allow_list::allowed(&self.settings.allow, addr.ip()),
            },
        })
    }

    fn accept_session(&mut self, id: SessionId) {
        let daemon = self.settings.daemon_name.clone();
        let s = self.sessions[id].as_mut().expect("alive");
        s.private_group = private_group_name(&s.private_name, &daemon);
        let accept = Accept {
            major: VERSION.0,
            minor: VERSION.1,
            patch: s.accept_patch.then_some(VERSION.2),
            private_group: s.private_group.clone(),
        };
        let mut bytes = Vec::new();
        accept.encode(&mut bytes);
        s.out.push_message(&[&bytes]);
        self.queued_bytes += bytes.len();
        s.phase = Phase::Ready;
        s.deadline = None;
        self.handshaking -= 1;
        self.mark_dirty(id);
        // Requests sent right behind the handshake are framed by the caller.
    }

    /// `r<N>-<fd>`, cut to 9 characters, unique.
    fn invent_name(&mut self, id: SessionId) -> Vec<u8> {
        if let Some(n) = self.invented.pop_front() {
            return n;
        }
        let conn_no = self.sessions[id].as_ref().map_or(0, |s| s.conn_no);
        loop {
            let n = self.next_random() % 9999;
            let mut name = format!("r{n}-{conn_no}").into_bytes();
            name.truncate(9);
            if !self.names.contains_key(&name) {
                return name;
            }
        }
    }
}
