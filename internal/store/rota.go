package store

// RotaStore keeps on-call rotas (escalation recipients by schedule); part
// of Store.
type RotaStore interface{}
