package logging_test

type env map[string]string

func (e env) get(k string) string { return e[k] }
